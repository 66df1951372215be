"""Hostile-input and crash tests: PostgreSQL fixtures (see tests/pg.py)."""

from __future__ import annotations

from tests.pg import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server"]
