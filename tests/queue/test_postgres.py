"""PostgreSQL-only store tests: several workers and processes on one database, schema races, bad input."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import socket
import subprocess
import sys
import time
from collections import defaultdict

import asyncpg
import pytest

from bot.queue.base import Status
from bot.queue.postgres import PostgresStore, normalise_dsn
from tests.conftest import ROOT
from tests.pg import PgServer, postgres_or_skip

pytestmark = pytest.mark.postgres


async def fill(store: PostgresStore, n: int, keys: int) -> dict[str, list[str]]:
    """Put ``n`` deliveries spread over ``keys`` pull requests; return each key's arrival order."""
    order: dict[str, list[str]] = defaultdict(list)
    for i in range(n):
        key = f"o/r#{i % keys}" if i % 7 else None  # some deliveries have no ordering key
        did = f"d{i:04d}"
        assert await store.put(did, "pull_request", b"{}", ordering_key=key)
        order[key or ""].append(did)
    return order


async def test_workers_on_separate_connections_keep_per_pr_order(pg_dsn: str) -> None:
    stores = [PostgresStore(pg_dsn, max_size=2) for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        order = await fill(stores[0], 240, keys=3)
        spans: dict[str, tuple[str, float, float]] = {}
        handled: list[str] = []

        async def worker(store: PostgresStore, name: str) -> None:
            idle = 0
            while idle < 5:
                batch = await store.claim(name, limit=3, lease_seconds=60)
                if not batch:
                    idle += 1
                    await asyncio.sleep(0.005)
                    continue
                idle = 0
                for d in batch:
                    start = time.monotonic()
                    await asyncio.sleep(random.uniform(0, 0.002))
                    handled.append(d.id)
                    spans[d.id] = (d.ordering_key or "", start, time.monotonic())
                    await store.complete(d.id, name)

        await asyncio.gather(*(worker(s, f"w{i}") for i, s in enumerate(stores)))
        assert sorted(handled) == sorted(spans) and len(handled) == 240, "each delivery handled exactly once"
        for key, ids in order.items():
            if not key:
                continue
            by_start = sorted(ids, key=lambda i: spans[i][1])
            assert by_start == ids, f"{key} processed out of order"
            for earlier, later in itertools.pairwise(ids):
                assert spans[later][1] >= spans[earlier][2], f"{later} started before {earlier} finished"
        assert (await stores[0].counts())[Status.DONE] == 240
    finally:
        for s in stores:
            await s.close()


@pytest.mark.slow
async def test_worker_processes_keep_per_pr_order(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    await store.open()
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            "CREATE TABLE work_log (delivery_id text, ordering_key text, worker text, "
            "started timestamptz, finished timestamptz)"
        )
        order = await fill(store, 150, keys=4)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.queue.pg_worker", pg_dsn, f"proc{i}", cwd=ROOT, env=env
            )
            for i in range(3)
        ]
        codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout=90)
        assert codes == [0, 0, 0]
        rows = await conn.fetch("SELECT * FROM work_log ORDER BY started")
        ids = [r["delivery_id"] for r in rows]
        assert len(ids) == 150 and len(set(ids)) == 150, "each delivery handled once across processes"
        assert len({r["worker"] for r in rows}) >= 2, "the work was shared between processes"
        by_key: dict[str, list[asyncpg.Record]] = defaultdict(list)
        for r in rows:
            if r["ordering_key"]:
                by_key[r["ordering_key"]].append(r)
        for key, handled in by_key.items():
            assert [r["delivery_id"] for r in handled] == order[key], f"{key} out of order across processes"
            for earlier, later in itertools.pairwise(handled):
                assert later["started"] >= earlier["finished"]
    finally:
        await conn.close()
        await store.close()


async def test_duplicates_from_several_replicas_stored_once(pg_dsn: str) -> None:
    stores = [PostgresStore(pg_dsn, max_size=3) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        ids = [f"guid-{i}" for i in range(60)]
        results = await asyncio.gather(
            *(s.put(i, "issue_comment", b"{}", ordering_key="o/r#1") for s in stores for i in ids)
        )
        assert results.count(True) == 60
        assert (await stores[0].counts())[Status.PENDING] == 60
    finally:
        for s in stores:
            await s.close()


async def test_replicas_opening_together_create_the_schema_once(pg_dsn: str) -> None:
    stores = [PostgresStore(pg_dsn, max_size=1) for _ in range(6)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert all([await s.ping() for s in stores])
    finally:
        for s in stores:
            await s.close()


async def test_nul_in_text_is_a_clear_error_and_error_text_is_kept(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    await store.open()
    try:
        with pytest.raises(ValueError, match="delivery id contains a NUL"):
            await store.put("bad\x00id", "push", b"{}")
        long_id = "".join(random.Random(2).choices("abcdefghijklmnopqrstuvwxyz0123456789", k=5000))
        with pytest.raises(ValueError, match="delivery id is 5000 characters long; at most 1000"):
            await store.put(long_id, "push", b"{}")
        await store.put("ok", "push", b"\x00binary\xff")
        [d] = await store.claim("w")
        assert d.payload == b"\x00binary\xff"
        await store.fail("ok", "w", "x\x00y" + "z" * 10_000, None)
        got = await store.get("ok")
        assert got is not None and got.last_error is not None
        assert got.last_error.startswith("x\\0y") and len(got.last_error) == 4000
    finally:
        await store.close()


async def test_unreachable_database_is_an_error_not_a_hang() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = PostgresStore(f"postgresql://u@127.0.0.1:{port}/db")
    assert not await store.ping()
    with pytest.raises(OSError):
        await store.open()
    assert "u@127" not in repr(store)


def test_dsn_spellings() -> None:
    assert normalise_dsn("postgres://a@h/db") == "postgresql://a@h/db"
    assert normalise_dsn("postgresql+asyncpg://a@h/db") == "postgresql://a@h/db"
    assert normalise_dsn("postgresql://a@h/db") == "postgresql://a@h/db"


def test_pg_worker_module_runs_standalone() -> None:
    """The helper process used above must import cleanly from the project root."""
    out = subprocess.run(
        [sys.executable, "-c", "import tests.queue.pg_worker"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
async def test_store_rides_out_a_database_restart() -> None:
    """A crash-restart of PostgreSQL costs a retry, not an error: the put in flight is stored."""
    with postgres_or_skip("gitops-bot-pg-restart-") as server:
        await _restart_scenario(server)


async def _restart_scenario(server: PgServer) -> None:
    store = PostgresStore(server.dsn, reconnect_attempts=30, reconnect_delay=0.1)
    try:
        await store.open()
        assert await store.put("before", "push", b"{}")
        await asyncio.to_thread(server.stop)
        assert not await store.ping()
        put = asyncio.create_task(store.put("during", "push", b"{}", ordering_key="k"))
        await asyncio.sleep(0.3)
        assert not put.done(), "the put waits for the database instead of failing"
        assert await asyncio.to_thread(server.start)
        assert await asyncio.wait_for(put, timeout=30)
        assert await store.ping()
        assert {d.id for d in await store.recent()} == {"before", "during"}
        [claimed] = await store.claim("w")
        assert claimed.id == "before"
    finally:
        await store.close()


async def test_concurrent_puts_are_group_committed_in_arrival_order(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    await store.open()
    try:
        ids = [f"g{i:03d}" for i in range(120)]
        results = await asyncio.gather(
            *(store.put(i, "pull_request", b"{}", ordering_key="o/r#1") for i in ids)
        )
        results += await asyncio.gather(store.put("g000", "push", b"{}"), store.put("new", "push", b"{}"))
        assert results == [True] * 120 + [False, True]
        assert store.batches < 20, f"{store.batches} statements for 122 puts"
        claimed = []
        while batch := await store.claim("w", limit=50):
            for d in batch:
                claimed.append(d.id)
                await store.complete(d.id, "w")
        assert [c for c in claimed if c != "new"] == ids, "one key's deliveries come out in put order"
    finally:
        await store.close()


async def test_prune_done_keeps_open_failed_dead_and_recent(pg_dsn: str) -> None:
    from datetime import timedelta

    store = PostgresStore(pg_dsn)
    await store.open()
    try:
        for did in ("old-done", "new-done", "dead", "pending"):
            await store.put(did, "push", b"{}")
        for d in await store.claim("w", limit=3):
            if d.id == "dead":
                await store.fail(d.id, "w", "x", None)
            else:
                await store.complete(d.id, "w")
        await store.pool.execute(
            "UPDATE gitops_bot_deliveries SET updated_at = now() - interval '10 days' "
            "WHERE id IN ('old-done', 'dead')"
        )
        assert await store.prune_done(timedelta(days=7)) == 1
        assert await store.get("old-done") is None
        assert all([await store.get(i) is not None for i in ("new-done", "dead", "pending")])
    finally:
        await store.close()


async def test_late_committed_earlier_insert_waits_for_the_running_one(pg_dsn: str) -> None:
    """seq comes from the insert, visibility from the commit: a slow replica must not break one-at-a-time."""
    store = PostgresStore(pg_dsn)
    await store.open()
    slow = await asyncpg.connect(pg_dsn)
    try:
        tx = slow.transaction()
        await tx.start()
        await slow.execute(
            "INSERT INTO gitops_bot_deliveries (id, event, payload, ordering_key) "
            "VALUES ('early', 'pull_request', '\\x7b7d'::bytea, 'o/r#1')"
        )
        await store.put("late", "pull_request", b"{}", ordering_key="o/r#1")
        assert [d.id for d in await store.claim("w1")] == ["late"]
        await tx.commit()
        assert await store.claim("w2", limit=5) == [], "'early' waits while 'late' is being handled"
        await store.complete("late", "w1")
        assert [d.id for d in await store.claim("w2")] == ["early"]
    finally:
        await slow.close()
        await store.close()
