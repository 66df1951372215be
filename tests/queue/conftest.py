"""Store fixtures: a session-wide real PostgreSQL and a fresh database per test (see tests/pg.py)."""

from __future__ import annotations

from tests.pg import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server"]
