"""Store fixtures: a session-wide real PostgreSQL and a fresh database per test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import PgServer, PgUnavailable, start_postgres


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """Start one PostgreSQL for the session; skip (with the reason) when none can be started.

    The cluster lives in its own directory under the system temp dir (pytest's own tmp tree is
    private to the current user, which the unprivileged server user cannot enter).
    """
    base = Path(tempfile.mkdtemp(prefix="gitops-bot-pg-"))
    try:
        server = start_postgres(base)
    except PgUnavailable as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"no PostgreSQL: {exc}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    """A DSN of a new, empty database on the session's server."""
    return pg_server.create_database()
