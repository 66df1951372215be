"""The default delivery store: one SQLite file in WAL mode, written by one thread.

Payloads are stored zstd-compressed (``payload_codec = 'zstd'``; webhook JSON shrinks about
tenfold), compressed on the writer thread, which releases the GIL while it compresses: the WAL,
the checkpoints and the file all carry a tenth of the bytes. Rows written before the codec
column existed read back unchanged.

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
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import zstandard

from bot.queue.base import Delivery, DeliveryStore, Status

T = TypeVar("T")

_UPSERT_STATE = (
    "INSERT INTO service_state (key, value, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)

log = logging.getLogger(__name__)

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
    updated_at REAL NOT NULL,
    payload_codec TEXT
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
    "next_attempt_at, last_error, updated_at, payload_codec"
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
# Rows per multi-row INSERT (9 parameters each, far below SQLite's 32766-variable limit).
INSERT_CHUNK = 500
# Payload bytes committed between two background checkpoints, and the committing connection's
# own fallback (pages of 16 KB) in case the background one falls behind.
CHECKPOINT_BYTES = 16 * 1024 * 1024
AUTOCHECKPOINT_PAGES = 8192
#: Bytes of the ``<file>-locks`` file that keys hash to (see ``advisory_lock``).
LOCK_SLOTS = 1 << 20

PutRow = tuple[str, str, str | None, bytes, int | None, str | None]
# (id, event, action, stored payload, installation id, ordering key, codec)
StoredRow = tuple[str, str, str | None, bytes, int | None, str | None, str | None]
# Payloads shorter than this are stored as they are (compression would not pay for itself).
COMPRESS_MIN_BYTES = 512
ZSTD_LEVEL = 1


def _encode_rows(rows: list[PutRow], compressor: zstandard.ZstdCompressor) -> list[StoredRow]:
    """Compress each payload when that makes it smaller; name the codec per row.

    The whole batch is compressed in one call, which lets go of the GIL once rather than once
    per payload: the event loop holds the GIL most of the time, and each time this thread
    wants it back it waits for the loop's next system call.
    """
    big = [i for i, row in enumerate(rows) if len(row[3]) >= COMPRESS_MIN_BYTES]
    packed: dict[int, bytes] = {}
    if len(big) == 1:
        packed[big[0]] = compressor.compress(rows[big[0]][3])
    elif big:
        frames = compressor.multi_compress_to_buffer([rows[i][3] for i in big], threads=1)
        packed = {i: frames[n].tobytes() for n, i in enumerate(big)}
    out: list[StoredRow] = []
    for i, (did, event, action, payload, inst, key) in enumerate(rows):
        small = packed.get(i)
        if small is not None and len(small) < len(payload):
            out.append((did, event, action, small, inst, key, "zstd"))
        else:
            out.append((did, event, action, payload, inst, key, None))
    return out


def decode_payload(stored: bytes, codec: str | None) -> bytes:
    """Return the payload as it was received (``codec`` is None or ``'zstd'``)."""
    if codec is None:
        return bytes(stored)
    if codec == "zstd":
        return zstandard.ZstdDecompressor().decompress(stored)
    raise ValueError(f"unknown payload codec {codec!r}")


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _row_to_delivery(row: sqlite3.Row | tuple[Any, ...]) -> Delivery:
    (did, event, action, payload, inst, key, status, attempts, received, next_at, error, updated, codec) = row
    return Delivery(
        id=did,
        event=event,
        action=action,
        payload=decode_payload(payload, codec),
        installation_id=inst,
        ordering_key=key,
        status=Status(status),
        attempts=attempts,
        received_at=datetime.fromtimestamp(received, UTC),
        next_attempt_at=_dt(next_at),
        last_error=error,
        updated_at=_dt(updated),
    )


class _Put:
    """One queued ``put``: the row to insert and the future its caller awaits."""

    __slots__ = ("future", "row")

    def __init__(self, row: PutRow, future: asyncio.Future[bool]) -> None:
        self.row = row
        self.future = future


class _Call:
    """One queued statement function and the future its caller awaits."""

    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[Any], Any], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.future = future


_STOP = object()


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """Resolve futures on their event loop (callers that gave up are skipped)."""
    for future, result, error in outcomes:
        if future.done():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class SQLiteStore(DeliveryStore):
    """A :class:`DeliveryStore` in one SQLite file (``sqlite:///path``).

    One writer thread owns the connection and takes jobs from a queue: every ``put`` queued
    while a commit runs goes into the next transaction, which starts as soon as the previous
    commit returns (no event-loop round trip in between), and each batch is answered with one
    wake-up of the event loop.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", busy_timeout_ms: int = 10_000) -> None:
        if synchronous.upper() not in {"FULL", "EXTRA", "NORMAL", "OFF"}:
            raise ValueError(f"unknown SQLite synchronous mode {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.busy_timeout_ms = busy_timeout_ms
        self._jobs: queue.SimpleQueue[_Put | _Call | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.commits = 0  # number of put transactions, for tests and benchmarks
        self.checkpoints = 0  # background WAL checkpoints run, for tests and benchmarks
        self.last_checkpoint = (0, 0, 0)  # (busy, WAL frames, frames copied) of the last one
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_due = threading.Event()
        self._compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)  # used by the writer thread only
        self._lock_file: int | None = None
        self._lock_holders: dict[int, int] = {}
        self._closing = False
        self._wal_bytes = 0  # payload bytes committed since the last checkpoint request
        self.checkpoint_bytes = CHECKPOINT_BYTES

    # -- plumbing -------------------------------------------------------------------------
    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._thread is None or self._conn is None:
            raise RuntimeError("the delivery store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put(_Call(fn, future))
        return await future

    def _writer(self) -> None:
        """Run queued jobs on the one connection until the stop marker (then close it)."""
        jobs = self._jobs
        while True:
            batch = [jobs.get()]
            while True:  # take everything queued meanwhile: one transaction for all the puts
                try:
                    batch.append(jobs.get_nowait())
                except queue.Empty:
                    break
            stop = False
            puts: list[_Put] = []
            for job in batch:
                if isinstance(job, _Put):
                    puts.append(job)
                    continue
                if puts:  # keep arrival order between puts and other statements
                    self._commit_puts(puts)
                    puts = []
                if isinstance(job, _Call):
                    self._call(job)
                else:
                    stop = True
            if puts:
                self._commit_puts(puts)
            if stop:
                if self._conn is not None:
                    self._conn.close()
                return

    def _deliver(self, outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
        loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]]
        loops = {}
        for outcome in outcomes:
            loops.setdefault(outcome[0].get_loop(), []).append(outcome)
        for loop, items in loops.items():
            with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, items)

    def _call(self, job: _Call) -> None:
        try:  # the connection is None only for the job that opens it
            result, error = job.fn(self._conn), None
        except BaseException as exc:  # handed to the caller, like run_in_executor would
            result, error = None, exc
        self._deliver([(job.future, result, error)])

    def _commit_puts(self, puts: list[_Put]) -> None:
        conn = self._conn
        try:
            if conn is None:
                raise RuntimeError("the delivery store is not open")
            rows = _encode_rows([p.row for p in puts], self._compressor)
            inserted = self._insert_batch(conn, rows)
        except BaseException as exc:
            self._deliver([(p.future, None, exc) for p in puts])
            return
        self._deliver([(p.future, ok, None) for p, ok in zip(puts, inserted, strict=True)])
        self._wal_bytes += sum(len(row[3]) for row in rows)
        if self._wal_bytes >= self.checkpoint_bytes:
            self._wal_bytes = 0
            self._checkpoint_due.set()

    def _checkpoint_loop(self) -> None:
        """Copy the WAL back into the database on a second connection, off the commit path.

        ``PASSIVE`` never blocks the writer: commits keep appending to the WAL meanwhile, and
        SQLite restarts the WAL from its beginning once a checkpoint has caught up. Durability
        does not depend on it (a commit is durable once its WAL frames are fsync'ed).
        """
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._checkpoint_due.wait()
                self._checkpoint_due.clear()
                if self._closing:
                    return
                try:
                    if conn is None:
                        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
                        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.last_checkpoint = (busy, frames, copied)
                    self.checkpoints += 1
                except sqlite3.Error:
                    log.warning("background WAL checkpoint of %s failed; SQLite's own will run", self.path)
        finally:
            if conn is not None:
                conn.close()

    def _connect(self) -> sqlite3.Connection:
        if self.path.parent and not self.path.parent.exists():
            raise FileNotFoundError(f"directory {self.path.parent} does not exist")
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            # Payloads are tens of KB: bigger pages mean fewer overflow pages per row. Only takes
            # effect when the file is created (before WAL mode is set).
            conn.execute("PRAGMA page_size = 16384")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch {self.path} to WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            # Checkpoints run on their own thread (see _checkpoint_loop); the committing
            # connection only checkpoints itself if that one falls far behind.
            conn.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
            conn.executescript(SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(deliveries)")}
            if "payload_codec" not in columns:  # a file from before payload compression
                conn.execute("ALTER TABLE deliveries ADD COLUMN payload_codec TEXT")
        except BaseException:
            conn.close()
            raise
        return conn

    async def open(self) -> None:
        """Open the file (creating it and the schema when missing)."""
        if self._conn is not None:
            return
        self._jobs = queue.SimpleQueue()
        thread = threading.Thread(target=self._writer, name="sqlite-store", daemon=True)
        self._thread = thread
        thread.start()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def connect(_: Any) -> None:
            self._conn = self._connect()

        self._jobs.put(_Call(connect, future))
        try:
            await future
        except BaseException:
            await self._stop()
            raise
        self._closing = False
        self._checkpoint_due.clear()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()

    async def _stop(self) -> None:
        thread, self._thread = self._thread, None
        checkpointer, self._checkpointer = self._checkpointer, None
        loop = asyncio.get_running_loop()
        if thread is not None:
            self._jobs.put(_STOP)
            await loop.run_in_executor(None, thread.join)
        if checkpointer is not None:
            self._closing = True
            self._checkpoint_due.set()
            await loop.run_in_executor(None, checkpointer.join)
        self._conn = None

    async def close(self) -> None:
        """Finish the queued puts and statements, then close the connection and the thread."""
        await self._stop()
        if self._lock_file is not None and not self._lock_holders:
            os.close(self._lock_file)
            self._lock_file = None

    async def ping(self) -> bool:
        """Return True when a trivial query answers."""
        try:
            return await self._run(lambda c: c.execute("SELECT 1").fetchone()[0] == 1)
        except (sqlite3.Error, RuntimeError):
            return False

    # -- a lock shared by the processes using this file -------------------------------------
    @contextlib.asynccontextmanager
    async def advisory_lock(self, key: str) -> AsyncIterator[None]:
        """Hold ``key`` against every process that uses this database file.

        ``serve`` and one or more ``gitops-bot worker`` processes may share the SQLite file.
        Around find-then-create writes to GitHub they need what PostgreSQL's advisory locks
        give: a POSIX record lock on one byte of ``<file>-locks`` (the byte is a hash of the
        key, one of 2**20), released by the kernel if the process dies. Record locks are per
        process, so holders in this process are counted and the byte is unlocked by the last.
        Waits without blocking the event loop (non-blocking attempts, backing off to 50 ms).
        """
        slot = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % LOCK_SLOTS
        fd = self._lock_fd()
        holders = self._lock_holders.get(slot, 0)
        if holders == 0:
            delay = 0.001
            while True:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EACCES, errno.EAGAIN):
                        raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
            holders = self._lock_holders.get(slot, 0)  # another task of ours may have taken it meanwhile
        self._lock_holders[slot] = holders + 1
        try:
            yield
        finally:
            left = self._lock_holders[slot] - 1
            if left:
                self._lock_holders[slot] = left
            else:
                del self._lock_holders[slot]
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, slot)

    def _lock_fd(self) -> int:
        if self._lock_file is None:
            self._lock_file = os.open(f"{self.path}-locks", os.O_RDWR | os.O_CREAT, 0o600)
        return self._lock_file

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
        if self._conn is None or self._thread is None:
            raise RuntimeError("the delivery store is not open")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._jobs.put(_Put((delivery_id, event, action, payload, installation_id, ordering_key), future))
        # A cancelled caller cancels only its own future: the commit goes on, and the writer
        # skips futures that are already done when it answers the batch.
        return await future

    def _insert_batch(self, conn: sqlite3.Connection, rows: list[StoredRow]) -> list[bool]:
        """Insert ``rows`` in one transaction; return, per row, whether it was new.

        A few statements per batch, not one per row: the ids already stored are read with one
        ``SELECT ... IN``, then the new rows go in with multi-row ``INSERT``s. Each statement
        hands the GIL back and forth with the event loop once, whatever the batch size.
        """
        now = time.time()
        results: list[bool] = []
        fresh: list[StoredRow] = []
        seen: set[str] = set()
        conn.execute("BEGIN IMMEDIATE")
        try:
            stored: set[str] = set()
            for start in range(0, len(rows), INSERT_CHUNK):
                ids = [row[0] for row in rows[start : start + INSERT_CHUNK]]
                marks = ", ".join("?" * len(ids))
                stored.update(
                    r[0] for r in conn.execute(f"SELECT id FROM deliveries WHERE id IN ({marks})", ids)
                )
            for row in rows:
                new = row[0] not in stored and row[0] not in seen
                seen.add(row[0])
                results.append(new)
                if new:
                    fresh.append(row)
            for start in range(0, len(fresh), INSERT_CHUNK):
                chunk = fresh[start : start + INSERT_CHUNK]
                values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)"] * len(chunk))
                params = [v for row in chunk for v in (*row, now, now)]
                conn.execute(
                    "INSERT INTO deliveries (id, event, action, payload, installation_id, ordering_key, "
                    f"payload_codec, status, attempts, received_at, updated_at) VALUES {values}",
                    params,
                )
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
        """Push the lease of a delivery ``worker_id`` holds ``lease_seconds`` from now; False if lost."""

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

        Dead letters are kept until retried. GitHub
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
                _UPSERT_STATE,
                (key, value, time.time()),
            )

        await self._run(work)

    async def delete_state(self, key: str) -> None:
        """Remove one service-state value."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM service_state WHERE key = ?", (key,))

        await self._run(work)

    async def update_state(self, key: str, decide: Callable[[str | None], tuple[str | None, T]]) -> T:
        """Read, decide and write one service-state value in one immediate transaction."""

        def work(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")  # the write lock first: no other process reads in between
            try:
                row = conn.execute("SELECT value FROM service_state WHERE key = ?", (key,)).fetchone()
                value, result = decide(None if row is None else str(row[0]))
                if value is not None:
                    conn.execute(
                        _UPSERT_STATE,
                        (key, value, time.time()),
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._run(work)
