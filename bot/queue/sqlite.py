"""The default delivery store: one SQLite file in WAL mode, written by one thread.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL``, so a committed ``put`` has been
fsync'ed to the WAL before the webhook is answered (``NORMAL`` may lose the last commits on
power loss, which would break "stored before 2xx"). To keep acknowledgements fast under load,
concurrent ``put`` calls are *group-committed*: puts that arrive while a commit is running are
written together in the next transaction, so N concurrent webhooks cost about one fsync, not N.

All statements run on one dedicated thread with one connection, so the event loop never
blocks on disk. Several processes (``serve`` with the worker off plus ``gitops-bot worker``) may
share one file: claims run in ``BEGIN IMMEDIATE`` transactions, and ``busy_timeout`` waits for
the other writer.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from bot.queue.base import Delivery, DeliveryStore, Status

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    action TEXT,
    payload BLOB NOT NULL,
    installation_id INTEGER,
    ordering_key TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    received_at REAL NOT NULL,
    next_attempt_at REAL,
    lease_owner TEXT,
    lease_until REAL,
    last_error TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_status ON deliveries (status, seq);
DROP INDEX IF EXISTS deliveries_ordering;
-- Only unfinished rows can block a key: a partial index keeps claims fast however long the history.
CREATE INDEX IF NOT EXISTS deliveries_active_key ON deliveries (ordering_key, seq)
    WHERE status IN ('pending', 'processing', 'failed');
CREATE INDEX IF NOT EXISTS deliveries_updated ON deliveries (updated_at);
CREATE TABLE IF NOT EXISTS service_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""

COLUMNS = (
    "id, event, action, payload, installation_id, ordering_key, status, attempts, received_at, "
    "next_attempt_at, last_error, updated_at"
)

CLAIMABLE = """
SELECT d.seq, d.id FROM deliveries AS d
WHERE (
    d.status = 'pending'
    OR (d.status = 'failed' AND d.next_attempt_at <= :now)
    OR (d.status = 'processing' AND d.lease_until <= :now)
)
AND (
    d.ordering_key IS NULL
    OR NOT EXISTS (
        SELECT 1 FROM deliveries AS e
        WHERE e.ordering_key = d.ordering_key AND e.seq < d.seq
          AND e.status IN ('pending', 'processing', 'failed')
    )
)
ORDER BY d.seq
LIMIT :limit
"""

MAX_ERROR_CHARS = 4000

PutRow = tuple[str, str, str | None, bytes, int | None, str | None]


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _row_to_delivery(row: sqlite3.Row | tuple[Any, ...]) -> Delivery:
    (did, event, action, payload, inst, key, status, attempts, received, next_at, error, updated) = row
    return Delivery(
        id=did,
        event=event,
        action=action,
        payload=bytes(payload),
        installation_id=inst,
        ordering_key=key,
        status=Status(status),
        attempts=attempts,
        received_at=datetime.fromtimestamp(received, UTC),
        next_attempt_at=_dt(next_at),
        last_error=error,
        updated_at=_dt(updated),
    )


class SQLiteStore(DeliveryStore):
    """A :class:`DeliveryStore` in one SQLite file (``sqlite:///path``)."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", busy_timeout_ms: int = 10_000) -> None:
        if synchronous.upper() not in {"FULL", "EXTRA", "NORMAL", "OFF"}:
            raise ValueError(f"unknown SQLite synchronous mode {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[PutRow, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0  # number of put transactions, for tests and benchmarks

    # -- plumbing -------------------------------------------------------------------------
    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None or self._conn is None:
            raise RuntimeError("the delivery store is not open")
        conn = self._conn
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, conn)

    def _connect(self) -> sqlite3.Connection:
        if self.path.parent and not self.path.parent.exists():
            raise FileNotFoundError(f"directory {self.path.parent} does not exist")
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        # Payloads are tens of KB: bigger pages mean fewer overflow pages per row. Only takes
        # effect when the file is created (before WAL mode is set).
        conn.execute("PRAGMA page_size = 16384")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch {self.path} to WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA wal_autocheckpoint = 2048")  # 32 MB of WAL between checkpoints
        conn.executescript(SCHEMA)
        return conn

    async def open(self) -> None:
        """Open the file (creating it and the schema when missing)."""
        if self._conn is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        try:
            self._conn = await loop.run_in_executor(self._executor, self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        """Finish pending puts, then close the connection and the thread."""
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        if self._conn is not None and self._executor is not None:
            conn = self._conn
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._conn = None
        self._executor = None

    async def ping(self) -> bool:
        """Return True when a trivial query answers."""
        try:
            return await self._run(lambda c: c.execute("SELECT 1").fetchone()[0] == 1)
        except (sqlite3.Error, RuntimeError):
            return False

    # -- put with group commit ------------------------------------------------------------
    async def put(
        self,
        delivery_id: str,
        event: str,
        payload: bytes,
        *,
        action: str | None = None,
        installation_id: int | None = None,
        ordering_key: str | None = None,
    ) -> bool:
        """Store a delivery durably (group-committed); return False when the id was already stored."""
        if self._conn is None:
            raise RuntimeError("the delivery store is not open")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(((delivery_id, event, action, payload, installation_id, ordering_key), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        return await asyncio.shield(future)

    async def _flush_loop(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            rows = [row for row, _ in batch]
            try:
                inserted = await self._run(functools.partial(self._insert_batch, rows=rows))
            except BaseException as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, fut), ok in zip(batch, inserted, strict=True):
                if not fut.done():
                    fut.set_result(ok)

    def _insert_batch(self, conn: sqlite3.Connection, rows: list[PutRow]) -> list[bool]:
        now = time.time()
        results: list[bool] = []
        seen: set[str] = set()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for did, event, action, payload, inst, key in rows:
                if did in seen:
                    results.append(False)
                    continue
                seen.add(did)
                cur = conn.execute(
                    "INSERT OR IGNORE INTO deliveries (id, event, action, payload, installation_id, "
                    "ordering_key, status, attempts, received_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
                    (did, event, action, payload, inst, key, now, now),
                )
                results.append(cur.rowcount == 1)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.commits += 1
        return results

    # -- worker side ----------------------------------------------------------------------
    async def claim(self, worker_id: str, *, limit: int = 1, lease_seconds: float = 300.0) -> list[Delivery]:
        """Lease up to ``limit`` runnable deliveries, respecting per-key arrival order."""

        def work(conn: sqlite3.Connection) -> list[Delivery]:
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            try:
                picked = conn.execute(CLAIMABLE, {"now": now, "limit": limit}).fetchall()
                out: list[Delivery] = []
                for seq, _did in picked:
                    conn.execute(
                        "UPDATE deliveries SET status = 'processing', attempts = attempts + 1, "
                        "lease_owner = ?, lease_until = ?, next_attempt_at = NULL, updated_at = ? "
                        "WHERE seq = ?",
                        (worker_id, now + lease_seconds, now, seq),
                    )
                    row = conn.execute(f"SELECT {COLUMNS} FROM deliveries WHERE seq = ?", (seq,)).fetchone()
                    out.append(_row_to_delivery(row))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return out

        return await self._run(work)

    async def extend_lease(self, delivery_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Push the lease of a delivery ``worker_id`` holds ``lease_seconds`` from now; False if lost.

        Not part of the DeliveryStore interface: the worker calls it when a store offers it.
        """

        def work(conn: sqlite3.Connection) -> bool:
            now = time.time()
            cur = conn.execute(
                "UPDATE deliveries SET lease_until = ?, updated_at = ? "
                "WHERE id = ? AND status = 'processing' AND lease_owner = ?",
                (now + lease_seconds, now, delivery_id, worker_id),
            )
            return cur.rowcount == 1

        return await self._run(work)

    async def prune_done(self, older_than: timedelta) -> int:
        """Delete ``done`` deliveries last updated more than ``older_than`` ago; return how many.

        Not part of the DeliveryStore interface (same signature as the PostgreSQL store's): the
        worker calls it when a store offers it. Dead letters are kept until retried. GitHub
        redelivers only recent deliveries (3 days), so a longer retention keeps deduplication.
        """

        def work(conn: sqlite3.Connection) -> int:
            cutoff = time.time() - older_than.total_seconds()
            cur = conn.execute("DELETE FROM deliveries WHERE status = 'done' AND updated_at < ?", (cutoff,))
            return cur.rowcount

        return await self._run(work)

    async def complete(self, delivery_id: str, worker_id: str) -> None:
        """Mark a delivery done (only while ``worker_id`` still holds its lease)."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE deliveries SET status = 'done', lease_owner = NULL, lease_until = NULL, "
                "next_attempt_at = NULL, updated_at = ? "
                "WHERE id = ? AND status = 'processing' AND lease_owner = ?",
                (time.time(), delivery_id, worker_id),
            )

        await self._run(work)

    async def fail(self, delivery_id: str, worker_id: str, error: str, retry_at: datetime | None) -> None:
        """Record a failure: ``failed`` with a retry time, or ``dead`` when ``retry_at`` is None."""
        status = Status.DEAD if retry_at is None else Status.FAILED
        next_at = None if retry_at is None else retry_at.timestamp()

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE deliveries SET status = ?, next_attempt_at = ?, last_error = ?, "
                "lease_owner = NULL, lease_until = NULL, updated_at = ? "
                "WHERE id = ? AND status = 'processing' AND lease_owner = ?",
                (status.value, next_at, error[:MAX_ERROR_CHARS], time.time(), delivery_id, worker_id),
            )

        await self._run(work)

    async def retry(self, delivery_id: str) -> bool:
        """Put a failed or dead delivery back to pending with a fresh attempt budget."""

        def work(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL, "
                "updated_at = ? WHERE id = ? AND status IN ('failed', 'dead')",
                (time.time(), delivery_id),
            )
            return cur.rowcount == 1

        return await self._run(work)

    async def retry_dead(self) -> int:
        """Put every dead delivery back to pending; return how many."""

        def work(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL, "
                "updated_at = ? WHERE status = 'dead'",
                (time.time(),),
            )
            return cur.rowcount

        return await self._run(work)

    # -- reading --------------------------------------------------------------------------
    async def get(self, delivery_id: str) -> Delivery | None:
        """Return one delivery, or None."""

        def work(conn: sqlite3.Connection) -> Delivery | None:
            row = conn.execute(f"SELECT {COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
            return None if row is None else _row_to_delivery(row)

        return await self._run(work)

    async def counts(self) -> dict[Status, int]:
        """Return the number of deliveries per status, every status present."""

        def work(conn: sqlite3.Connection) -> dict[Status, int]:
            out = dict.fromkeys(Status, 0)
            for status, n in conn.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status"):
                out[Status(status)] = n
            return out

        return await self._run(work)

    async def recent(self, *, status: Status | None = None, limit: int = 20) -> list[Delivery]:
        """Return the most recently updated deliveries, optionally of one status."""

        def work(conn: sqlite3.Connection) -> list[Delivery]:
            if status is None:
                rows = conn.execute(
                    f"SELECT {COLUMNS} FROM deliveries ORDER BY updated_at DESC, seq DESC LIMIT ?", (limit,)
                )
            else:
                rows = conn.execute(
                    f"SELECT {COLUMNS} FROM deliveries WHERE status = ? "
                    "ORDER BY updated_at DESC, seq DESC LIMIT ?",
                    (status.value, limit),
                )
            return [_row_to_delivery(r) for r in rows.fetchall()]

        return await self._run(work)

    async def get_state(self, key: str) -> str | None:
        """Read one service-state value."""

        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM service_state WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        return await self._run(work)

    async def set_state(self, key: str, value: str) -> None:
        """Write one service-state value."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO service_state (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, value, time.time()),
            )

        await self._run(work)
