"""Real git repositories for the output-safety tests (the render tests' factory)."""

from tests.render.conftest import make_repo

__all__ = ["make_repo"]
