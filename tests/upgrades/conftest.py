"""Upgrade tests reuse the render tests' git repository factory."""

from tests.render.conftest import make_repo

__all__ = ["make_repo"]
