"""Upgrade tests reuse the render tests' git repository factory, and PostgreSQL (see tests/pg.py)."""

from tests.pg import pg_dsn, pg_server
from tests.render.conftest import make_repo

__all__ = ["make_repo", "pg_dsn", "pg_server"]
