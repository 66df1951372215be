"""Start a throw-away PostgreSQL server from the binaries on this machine (for tests and benchmarks).

``start_postgres(base_dir)`` finds ``initdb``/``pg_ctl`` on PATH or under
``/usr/lib/postgresql/*/bin``, creates a cluster in ``base_dir`` listening on 127.0.0.1 on a free
port with trust auth, and returns a :class:`PgServer` (``dsn``, ``stop()``). When running as root
(PostgreSQL refuses to), the server runs as the ``postgres`` or ``nobody`` user through
``runuser``. :class:`PgUnavailable` says why no server could be started, so tests can skip
with that reason.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@contextlib.contextmanager
def postgres_or_skip(prefix: str = "gitops-bot-pg-") -> Iterator[PgServer]:
    """Run a PostgreSQL of one's own for the block; skip the test (with the reason) when impossible.

    The cluster lives in its own directory under the system temp dir (pytest's own tmp tree is
    private to the current user, which the unprivileged server user cannot enter).
    """
    base = Path(tempfile.mkdtemp(prefix=prefix))
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


_SHARED: dict[str, Any] = {}


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> PgServer:
    """One PostgreSQL for the whole run (import this and :func:`pg_dsn` into a ``conftest.py``).

    Each conftest that imports the fixture gets its own session-scoped definition; they all hand
    out the same server, started on first use and stopped when pytest ends.
    """
    if "skip" in _SHARED:
        pytest.skip(_SHARED["skip"])
    if "server" not in _SHARED:
        context = postgres_or_skip()
        try:
            _SHARED["server"] = context.__enter__()
        except pytest.skip.Exception as exc:
            _SHARED["skip"] = str(exc.msg)
            raise
        request.config.add_cleanup(lambda: context.__exit__(None, None, None))
    server: PgServer = _SHARED["server"]
    return server


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    """A DSN of a new, empty database on the session's server."""
    return pg_server.create_database()


class PgUnavailable(RuntimeError):
    """No PostgreSQL server could be started here (the message says why)."""


def _find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running PostgreSQL cluster owned by the test session."""

    data_dir: Path
    port: int
    pg_ctl: str
    prefix: list[str]
    user: str
    fsync: bool = False

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh database and return its DSN (isolates one test from another)."""
        import asyncio

        import asyncpg

        name = name or f"t_{uuid.uuid4().hex[:12]}"

        async def create() -> None:
            conn = await asyncpg.connect(self.dsn)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        # Run on a thread: callers may already be inside an event loop (async fixtures).
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, create()).result(timeout=60)
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``: like a crash, recovery runs at next start)."""
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", str(self.data_dir), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
            timeout=60,
        )

    def start(self) -> bool:
        """Start (again) on the same port; return True when it is up."""
        sock_dir = self.data_dir.parent / "sock"
        opts = f"-p {self.port} -k {sock_dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.fsync:
            opts += " -c fsync=off"
        log = self.data_dir.parent / "log"
        started = subprocess.run(
            [
                *self.prefix,
                self.pg_ctl,
                "-D",
                str(self.data_dir),
                "-o",
                opts,
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "start",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=90,
        )
        return started.returncode == 0


def start_postgres(base_dir: Path, *, fsync: bool = False) -> PgServer:
    """Create and start a cluster under ``base_dir``; raise :class:`PgUnavailable` when impossible.

    ``fsync=False`` (tests) trades crash safety of the test cluster for speed; benchmarks pass True.
    """
    initdb, pg_ctl = _find_bin("initdb"), _find_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise PgUnavailable("PostgreSQL binaries (initdb, pg_ctl) not found on PATH or /usr/lib/postgresql")
    prefix: list[str] = []
    run_as: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        for candidate in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                run_as = pwd.getpwnam(candidate)
                break
        runuser = shutil.which("runuser")
        if run_as is None or runuser is None:
            raise PgUnavailable("running as root and no unprivileged user/runuser to start PostgreSQL with")
        prefix = [runuser, "-u", run_as.pw_name, "--"]
    base_dir.mkdir(parents=True, exist_ok=True)
    data_dir = base_dir / "data"
    sock_dir = base_dir / "sock"
    sock_dir.mkdir(exist_ok=True)
    if run_as is not None:
        for p in (base_dir, sock_dir):
            os.chown(p, run_as.pw_uid, run_as.pw_gid)
    user = "gitops"
    init = subprocess.run(
        [*prefix, initdb, "-D", str(data_dir), "-U", user, "-A", "trust", "-E", "UTF8", "--no-sync"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if init.returncode != 0:
        raise PgUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
    for _ in range(3):
        server = PgServer(
            data_dir=data_dir, port=_free_port(), pg_ctl=pg_ctl, prefix=prefix, user=user, fsync=fsync
        )
        if server.start():
            return server
    log = base_dir / "log"
    last_error = log.read_text(errors="replace")[-500:] if log.exists() else "no log"
    raise PgUnavailable(f"pg_ctl start failed: {last_error.strip()}")
