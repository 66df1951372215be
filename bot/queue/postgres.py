"""The scale-out delivery store: PostgreSQL through asyncpg (``DATABASE_URL=postgresql://...``).

Same semantics as the SQLite store (see :mod:`bot.queue.base`); several ``serve`` and ``worker``
processes on several hosts share one database:

* ``put`` is an ``INSERT ... ON CONFLICT (id) DO NOTHING`` in autocommit: when it returns the row
  is committed (``synchronous_commit`` is left at the server's default, ``on``), and a duplicate
  ``X-GitHub-Delivery`` id is stored once whichever replica receives it. Puts that arrive while
  one is being written are *group-committed*: the next statement inserts them all (``unnest``,
  in arrival order), so a burst of webhooks costs a few commits, not one each.
* ``claim`` is one statement: a CTE selects runnable rows in arrival order ``FOR UPDATE SKIP
  LOCKED`` and the outer ``UPDATE`` leases them. A row is a candidate only when no earlier row
  with the same ``ordering_key`` is pending, processing or failed, so only the head of each pull
  request's queue can be claimed. Two replicas never get the same row (the row lock), and never
  two rows of one key (the second is not a head until the first is done or dead; when a
  concurrent claim changed a row, PostgreSQL re-checks its status under the lock). ``seq`` is
  taken at insert, not at commit, so a delivery inserted by a slow replica may become visible
  after a later one of the same pull request was claimed: it then waits while any row of its key
  holds a live lease, so one pull request is still handled one delivery at a time.
* Time comes from the database (``now()``) so replicas with skewed clocks agree on leases.
  ``fail(retry_at=...)`` takes the worker's clock, like the SQLite store.
* ``complete``/``fail`` act only while the worker still holds the lease: a worker whose lease
  expired and whose delivery was re-claimed cannot overwrite the new owner's result.
* A lost connection (database restart, failover, network blip) is retried a few times with
  backoff on a fresh pooled connection. Every operation is safe to repeat: ``put`` is
  ``ON CONFLICT DO NOTHING`` (a committed row whose answer was lost reads as a duplicate, and is
  still stored once), ``complete``/``fail`` are guarded updates, and a ``claim`` whose answer was
  lost only leaves a lease that expires.
* The schema is created on ``open`` under a transaction-scoped advisory lock, so replicas
  starting together do not race on ``CREATE TABLE``.

Tables are prefixed ``gitops_bot_`` so the bot can share a database with other applications.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from bot.queue.base import Delivery, DeliveryStore, Status

log = logging.getLogger(__name__)

T = TypeVar("T")

_UPSERT_STATE = (
    "INSERT INTO gitops_bot_state (key, value) VALUES ($1, $2) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()"
)

# Errors after which the same statement may be sent again on another connection.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin/crash shutdown, cannot connect now
)

SCHEMA_LOCK_ID = 0x6769746F7073  # "gitops"
MAX_ERROR_CHARS = 4000
MAX_KEY_CHARS = 1000  # ids, event names, actions, ordering keys (a btree entry holds ~2.7 kB)

SCHEMA = """
CREATE TABLE IF NOT EXISTS gitops_bot_deliveries (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    action TEXT,
    payload BYTEA NOT NULL,
    installation_id BIGINT,
    ordering_key TEXT,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'done', 'failed', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    next_attempt_at TIMESTAMPTZ,
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    last_error TEXT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS gitops_bot_deliveries_open
    ON gitops_bot_deliveries (seq) WHERE status IN ('pending', 'processing', 'failed');
CREATE INDEX IF NOT EXISTS gitops_bot_deliveries_key_open
    ON gitops_bot_deliveries (ordering_key, seq) WHERE status IN ('pending', 'processing', 'failed');
CREATE INDEX IF NOT EXISTS gitops_bot_deliveries_updated ON gitops_bot_deliveries (updated_at DESC, seq DESC);
CREATE INDEX IF NOT EXISTS gitops_bot_deliveries_status ON gitops_bot_deliveries (status);
CREATE TABLE IF NOT EXISTS gitops_bot_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""

MAX_BATCH = 500
PutRow = tuple[str, str, str | None, bytes, int | None, str | None]

# Many puts in one statement, in arrival order; a duplicate id (stored before, or twice in the
# batch) inserts nothing and is not returned.
INSERT_MANY = """
INSERT INTO gitops_bot_deliveries (id, event, action, payload, installation_id, ordering_key)
SELECT id, event, action, payload, installation_id, ordering_key
FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bigint[], $6::text[])
    WITH ORDINALITY AS u(id, event, action, payload, installation_id, ordering_key, n)
ORDER BY n
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

COLUMNS = (
    "id, event, action, payload, installation_id, ordering_key, status, attempts, received_at, "
    "next_attempt_at, last_error, updated_at"
)

CLAIM = f"""
WITH picked AS (
    SELECT d.seq FROM gitops_bot_deliveries AS d
    WHERE (
        d.status = 'pending'
        OR (d.status = 'failed' AND d.next_attempt_at <= now())
        OR (d.status = 'processing' AND d.lease_until <= now())
    )
    AND (
        d.ordering_key IS NULL
        OR NOT EXISTS (
            SELECT 1 FROM gitops_bot_deliveries AS e
            WHERE e.ordering_key = d.ordering_key AND e.seq <> d.seq
              AND (
                  (e.seq < d.seq AND e.status IN ('pending', 'processing', 'failed'))
                  -- a later row already leased: an earlier insert that committed late must wait
                  OR (e.status = 'processing' AND e.lease_until > now())
              )
        )
    )
    ORDER BY d.seq
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE gitops_bot_deliveries AS t
SET status = 'processing', attempts = t.attempts + 1, lease_owner = $1,
    lease_until = now() + make_interval(secs => $2), next_attempt_at = NULL, updated_at = now()
FROM picked WHERE t.seq = picked.seq
RETURNING t.seq, {", ".join("t." + c.strip() for c in COLUMNS.split(","))}
"""


def _row_to_delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        id=row["id"],
        event=row["event"],
        action=row["action"],
        payload=bytes(row["payload"]),
        installation_id=row["installation_id"],
        ordering_key=row["ordering_key"],
        status=Status(row["status"]),
        attempts=row["attempts"],
        received_at=row["received_at"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        updated_at=row["updated_at"],
    )


def _check_text(name: str, value: str | None) -> None:
    """Refuse text PostgreSQL cannot store or index (NUL, or too long for a unique index entry)."""
    if value is None:
        return
    if "\x00" in value:
        raise ValueError(f"{name} contains a NUL character, which PostgreSQL text cannot store")
    if len(value) > MAX_KEY_CHARS:
        raise ValueError(f"{name} is {len(value)} characters long; at most {MAX_KEY_CHARS} are stored")


def normalise_dsn(dsn: str) -> str:
    """Accept ``postgres://`` and ``postgresql+asyncpg://`` spellings; return a ``postgresql://`` DSN."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql://" + dsn[len(prefix) :]
    return dsn


class PostgresStore(DeliveryStore):
    """A :class:`DeliveryStore` in PostgreSQL, safe to share between many processes."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float = 30.0,
        reconnect_attempts: int = 6,
        reconnect_delay: float = 0.2,
    ) -> None:
        self.dsn = normalise_dsn(dsn)
        self._reconnect_attempts = reconnect_attempts
        self._reconnect_delay = reconnect_delay
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self._pending: list[tuple[PutRow, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0  # put statements run, for tests and benchmarks

    def __repr__(self) -> str:  # the DSN may carry a password
        return "PostgresStore(<dsn hidden>)"

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the delivery store is not open")
        return self._pool

    @contextlib.asynccontextmanager
    async def advisory_lock(self, key: str) -> AsyncIterator[None]:
        """Hold a session-level advisory lock on ``key`` across every replica sharing this database.

        Used around find-then-create writes to GitHub (check runs of one head commit), which two
        replicas handling related deliveries at once could otherwise both create.
        """
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", key)
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)

    async def _retrying(self, what: str, op: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
        """Run ``op`` on the pool, again after a lost connection (see module docs)."""
        delay = self._reconnect_delay
        for attempt in range(1, self._reconnect_attempts + 1):
            try:
                return await op(self.pool)
            except TRANSIENT_ERRORS as exc:
                if attempt == self._reconnect_attempts:
                    raise
                log.warning("PostgreSQL %s failed (%s); retrying in %.1fs", what, type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    async def _execute(self, query: str, *args: Any) -> str:
        return await self._retrying("update", lambda p: p.execute(query, *args))

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._retrying("query", lambda p: p.fetch(query, *args))

    async def _fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await self._retrying("query", lambda p: p.fetchrow(query, *args))

    async def _fetchval(self, query: str, *args: Any) -> Any:
        return await self._retrying("query", lambda p: p.fetchval(query, *args))

    async def open(self) -> None:
        """Connect a pool and create the schema when missing."""
        if self._pool is not None:
            return
        pool = await asyncpg.create_pool(
            self.dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            command_timeout=self._command_timeout,
        )
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK_ID)
                await conn.execute(SCHEMA)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        """Finish queued puts, then close the pool (waiting for statements in flight)."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._flusher)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def ping(self) -> bool:
        """Return True when the database answers a trivial query."""
        if self._pool is None:
            return False
        try:
            return bool(await self._pool.fetchval("SELECT 1", timeout=5) == 1)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False

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
        """Store a delivery (committed on return); return False when the id was already stored."""
        for name, value in (
            ("delivery id", delivery_id),
            ("event", event),
            ("action", action),
            ("ordering key", ordering_key),
        ):
            _check_text(name, value)
        if self._pool is None:
            raise RuntimeError("the delivery store is not open")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(((delivery_id, event, action, payload, installation_id, ordering_key), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        return await asyncio.shield(future)

    async def _flush_loop(self) -> None:
        """Insert queued puts in batches (group commit): one statement, one fsync per batch."""
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            rows = [row for row, _ in batch]
            columns = [list(c) for c in zip(*rows, strict=True)]
            try:
                inserted = {r["id"] for r in await self._fetch(INSERT_MANY, *columns)}
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            except BaseException as exc:  # cancelled: fail the waiters, then stop
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError(f"store put interrupted: {type(exc).__name__}"))
                raise
            self.batches += 1
            seen: set[str] = set()
            for row, fut in batch:
                fresh = row[0] in inserted and row[0] not in seen
                seen.add(row[0])
                if not fut.done():
                    fut.set_result(fresh)

    async def claim(self, worker_id: str, *, limit: int = 1, lease_seconds: float = 300.0) -> list[Delivery]:
        """Lease up to ``limit`` runnable deliveries, respecting per-key arrival order across replicas."""
        if limit <= 0:
            return []
        rows = await self._fetch(CLAIM, worker_id, float(lease_seconds), limit)
        return [_row_to_delivery(r) for r in sorted(rows, key=lambda r: r["seq"])]

    async def extend_lease(self, delivery_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Push the lease of a delivery ``worker_id`` holds ``lease_seconds`` from now; False if lost.

        Database time, like ``claim``: replicas with skewed clocks agree on when it ends.
        """
        result: str = await self._execute(
            "UPDATE gitops_bot_deliveries SET lease_until = now() + make_interval(secs => $3), "
            "updated_at = now() WHERE id = $1 AND status = 'processing' AND lease_owner = $2",
            delivery_id,
            worker_id,
            float(lease_seconds),
        )
        return result.endswith(" 1")

    async def complete(self, delivery_id: str, worker_id: str) -> None:
        """Mark a delivery done (only while ``worker_id`` still holds its lease)."""
        await self._execute(
            "UPDATE gitops_bot_deliveries SET status = 'done', lease_owner = NULL, lease_until = NULL, "
            "next_attempt_at = NULL, updated_at = now() "
            "WHERE id = $1 AND status = 'processing' AND lease_owner = $2",
            delivery_id,
            worker_id,
        )

    async def fail(self, delivery_id: str, worker_id: str, error: str, retry_at: datetime | None) -> None:
        """Record a failure: ``failed`` with a retry time, or ``dead`` when ``retry_at`` is None."""
        status = Status.DEAD if retry_at is None else Status.FAILED
        text = error.replace("\x00", "\\0")[:MAX_ERROR_CHARS]
        await self._execute(
            "UPDATE gitops_bot_deliveries SET status = $1, next_attempt_at = $2, last_error = $3, "
            "lease_owner = NULL, lease_until = NULL, updated_at = now() "
            "WHERE id = $4 AND status = 'processing' AND lease_owner = $5",
            status.value,
            retry_at,
            text,
            delivery_id,
            worker_id,
        )

    async def retry(self, delivery_id: str) -> bool:
        """Put a failed or dead delivery back to pending with a fresh attempt budget."""
        result: str = await self._execute(
            "UPDATE gitops_bot_deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL, "
            "updated_at = now() WHERE id = $1 AND status IN ('failed', 'dead')",
            delivery_id,
        )
        return result.endswith(" 1")

    async def retry_dead(self) -> int:
        """Put every dead delivery back to pending; return how many."""
        result: str = await self._execute(
            "UPDATE gitops_bot_deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL, "
            "updated_at = now() WHERE status = 'dead'"
        )
        return int(result.rsplit(" ", 1)[-1])

    async def get(self, delivery_id: str) -> Delivery | None:
        """Return one delivery, or None."""
        row = await self._fetchrow(f"SELECT {COLUMNS} FROM gitops_bot_deliveries WHERE id = $1", delivery_id)
        return None if row is None else _row_to_delivery(row)

    async def counts(self) -> dict[Status, int]:
        """Return the number of deliveries per status, every status present."""
        out = dict.fromkeys(Status, 0)
        for row in await self._fetch(
            "SELECT status, COUNT(*) AS n FROM gitops_bot_deliveries GROUP BY status"
        ):
            out[Status(row["status"])] = int(row["n"])
        return out

    async def recent(self, *, status: Status | None = None, limit: int = 20) -> list[Delivery]:
        """Return the most recently updated deliveries, optionally of one status."""
        args: list[Any] = [limit]
        where = ""
        if status is not None:
            where = "WHERE status = $2"
            args.append(status.value)
        rows = await self._fetch(
            f"SELECT {COLUMNS} FROM gitops_bot_deliveries {where} "
            "ORDER BY updated_at DESC, seq DESC LIMIT $1",
            *args,
        )
        return [_row_to_delivery(r) for r in rows]

    async def prune_done(self, older_than: timedelta) -> int:
        """Delete ``done`` deliveries last updated more than ``older_than`` ago; return how many.

        The worker runs it periodically to keep the table small. Failed, dead and open
        deliveries are never deleted, and neither is a done delivery's id
        newer than ``older_than``, so a redelivery of a recent delivery is still recognised.
        """
        result = await self._execute(
            "DELETE FROM gitops_bot_deliveries WHERE status = 'done' AND updated_at < now() - $1::interval",
            older_than,
        )
        return int(result.rsplit(" ", 1)[-1])

    async def get_state(self, key: str) -> str | None:
        """Read one service-state value."""
        value = await self._fetchval("SELECT value FROM gitops_bot_state WHERE key = $1", key)
        return None if value is None else str(value)

    async def set_state(self, key: str, value: str) -> None:
        """Write one service-state value."""
        await self._execute(
            _UPSERT_STATE,
            key,
            value,
        )

    async def delete_state(self, key: str) -> None:
        """Remove one service-state value."""
        await self._execute("DELETE FROM gitops_bot_state WHERE key = $1", key)

    async def update_state(self, key: str, decide: Callable[[str | None], tuple[str | None, T]]) -> T:
        """Read, decide and write one service-state value in one transaction, under a lock on ``key``.

        The transaction-level advisory lock also covers a key with no row yet (``FOR UPDATE``
        would lock nothing there), so two replicas never decide on the same old value.
        """

        async def op(pool: asyncpg.Pool) -> T:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)
                old = await conn.fetchval("SELECT value FROM gitops_bot_state WHERE key = $1", key)
                value, result = decide(None if old is None else str(old))
                if value is not None:
                    await conn.execute(
                        _UPSERT_STATE,
                        key,
                        value,
                    )
                return result

        return await self._retrying("update", op)
