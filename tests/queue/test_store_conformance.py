"""One conformance suite for every DeliveryStore (SQLite, PostgreSQL), from bot/queue/base.py's contract."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.queue.base import DeliveryStore, Status

StoreFactory = Callable[[], Awaitable[DeliveryStore]]


@pytest.fixture(params=["sqlite", "postgres"])
async def factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Yield a function opening a new store instance over the same durable location."""
    opened: list[DeliveryStore] = []
    if request.param == "sqlite":
        try:
            module = importlib.import_module("bot.queue.sqlite")
        except ModuleNotFoundError:
            pytest.skip("bot.queue.sqlite is not on this branch yet")
        path = tmp_path / "deliveries.db"

        def make() -> DeliveryStore:
            return module.SQLiteStore(path)  # type: ignore[no-any-return]
    else:
        from bot.queue.postgres import PostgresStore

        dsn = request.getfixturevalue("pg_dsn")

        def make() -> DeliveryStore:
            return PostgresStore(dsn)

    async def open_store() -> DeliveryStore:
        store = make()
        await store.open()
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        await store.close()


@pytest.fixture
async def store(factory: StoreFactory) -> DeliveryStore:
    return await factory()


def past() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=5)


def future() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


async def test_put_stores_once_and_get_returns_it(store: DeliveryStore) -> None:
    payload = bytes(range(256)) * 4
    assert await store.put(
        "d1", "pull_request", payload, action="opened", installation_id=7, ordering_key="o/r#1"
    )
    assert not await store.put("d1", "pull_request", b"other", action="closed")
    got = await store.get("d1")
    assert got is not None
    assert (got.id, got.event, got.action, got.payload) == ("d1", "pull_request", "opened", payload)
    assert (got.installation_id, got.ordering_key, got.status, got.attempts) == (
        7,
        "o/r#1",
        Status.PENDING,
        0,
    )
    assert got.received_at.tzinfo is not None
    assert await store.get("missing") is None


async def test_concurrent_duplicates_stored_once(store: DeliveryStore) -> None:
    results = await asyncio.gather(*(store.put("same", "push", b"{}") for _ in range(30)))
    assert results.count(True) == 1
    assert (await store.counts())[Status.PENDING] == 1


async def test_counts_have_every_status(store: DeliveryStore) -> None:
    counts = await store.counts()
    assert counts == dict.fromkeys(Status, 0)
    await store.put("a", "push", b"{}")
    assert (await store.counts())[Status.PENDING] == 1


async def test_claim_leases_in_arrival_order_and_counts_attempts(store: DeliveryStore) -> None:
    for i in range(3):
        await store.put(f"d{i}", "push", b"{}")
    first = await store.claim("w1", limit=2)
    assert [d.id for d in first] == ["d0", "d1"]
    assert all(d.status == Status.PROCESSING and d.attempts == 1 for d in first)
    assert [d.id for d in await store.claim("w2", limit=5)] == ["d2"]
    assert await store.claim("w3") == []
    await store.complete("d0", "w1")
    done = await store.get("d0")
    assert done is not None and done.status == Status.DONE


async def test_same_key_handed_out_strictly_in_order(store: DeliveryStore) -> None:
    await store.put("a1", "pull_request", b"{}", ordering_key="A")
    await store.put("b1", "pull_request", b"{}", ordering_key="B")
    await store.put("a2", "pull_request", b"{}", ordering_key="A")
    await store.put("n1", "ping", b"{}")
    claimed = await store.claim("w1", limit=10)
    assert [d.id for d in claimed] == ["a1", "b1", "n1"], "a2 waits for a1"
    assert await store.claim("w2", limit=10) == []
    await store.complete("a1", "w1")
    assert [d.id for d in await store.claim("w2", limit=10)] == ["a2"]


async def test_failed_blocks_its_key_until_retry_time(store: DeliveryStore) -> None:
    await store.put("a1", "pull_request", b"{}", ordering_key="A")
    await store.put("a2", "pull_request", b"{}", ordering_key="A")
    assert len(await store.claim("w1")) == 1
    await store.fail("a1", "w1", "GitHub said 502", future())
    got = await store.get("a1")
    assert got is not None and got.status == Status.FAILED and got.last_error == "GitHub said 502"
    assert got.next_attempt_at is not None
    assert await store.claim("w1", limit=5) == [], "a failed delivery waits, and a2 waits behind it"


async def test_failed_is_claimable_after_its_retry_time(store: DeliveryStore) -> None:
    await store.put("a1", "pull_request", b"{}", ordering_key="A")
    await store.claim("w1")
    await store.fail("a1", "w1", "boom", past())
    again = await store.claim("w2")
    assert [(d.id, d.attempts) for d in again] == [("a1", 2)]


async def test_dead_letter_unblocks_key_and_can_be_retried(store: DeliveryStore) -> None:
    await store.put("a1", "pull_request", b"{}", ordering_key="A")
    await store.put("a2", "pull_request", b"{}", ordering_key="A")
    await store.claim("w1")
    await store.fail("a1", "w1", "handler crashed: KeyError", None)
    dead = await store.get("a1")
    assert dead is not None and dead.status == Status.DEAD
    assert [d.id for d in await store.recent(status=Status.DEAD)] == ["a1"]
    assert [d.id for d in await store.claim("w1")] == ["a2"]
    await store.complete("a2", "w1")
    assert await store.retry("a1")
    back = await store.get("a1")
    assert back is not None and back.status == Status.PENDING
    assert not await store.retry("a1"), "a pending delivery is not retried again"
    assert not await store.retry("nope")
    assert [d.id for d in await store.claim("w1")] == ["a1"]


async def test_retry_dead_puts_all_back(store: DeliveryStore) -> None:
    for i in range(3):
        await store.put(f"d{i}", "push", b"{}")
    for d in await store.claim("w", limit=3):
        await store.fail(d.id, "w", "x", None)
    assert await store.retry_dead() == 3
    assert (await store.counts())[Status.PENDING] == 3
    assert await store.retry_dead() == 0


async def test_expired_lease_is_reclaimed_and_old_worker_cannot_finish(store: DeliveryStore) -> None:
    await store.put("a1", "pull_request", b"{}", ordering_key="A")
    await store.put("a2", "pull_request", b"{}", ordering_key="A")
    assert len(await store.claim("dead-worker", lease_seconds=0.0)) == 1
    await asyncio.sleep(0.01)
    [again] = await store.claim("w2", lease_seconds=300)
    assert again.id == "a1" and again.attempts == 2
    await store.complete("a1", "dead-worker")
    got = await store.get("a1")
    assert got is not None and got.status == Status.PROCESSING, "a stale worker cannot complete"
    await store.fail("a1", "dead-worker", "late", None)
    got = await store.get("a1")
    assert got is not None and got.status == Status.PROCESSING, "nor fail it"
    assert await store.claim("w3") == [], "a2 still waits behind the re-leased a1"
    await store.complete("a1", "w2")
    assert [d.id for d in await store.claim("w3")] == ["a2"]


async def test_recent_is_newest_first_and_filters(store: DeliveryStore) -> None:
    for i in range(5):
        await store.put(f"d{i}", "push", b"{}")
        await asyncio.sleep(0.002)
    recent = await store.recent(limit=3)
    assert [d.id for d in recent] == ["d4", "d3", "d2"]
    assert await store.recent(status=Status.DONE) == []


async def test_state_roundtrip(store: DeliveryStore) -> None:
    assert await store.get_state("redeliver.since") is None
    await store.set_state("redeliver.since", "2026-01-01T00:00:00Z")
    await store.set_state("redeliver.since", "2026-01-02T00:00:00Z")
    assert await store.get_state("redeliver.since") == "2026-01-02T00:00:00Z"
    await store.delete_state("redeliver.since")
    await store.delete_state("never.written")
    assert await store.get_state("redeliver.since") is None


def count_one(stored: str | None) -> tuple[str, int]:
    n = int(stored or "0") + 1
    return str(n), n


async def test_update_state_is_atomic_across_store_instances(factory: StoreFactory) -> None:
    """Two instances (replicas) counting on one key at once: no update is lost, no count given twice."""
    first, second = await factory(), await factory()
    results = await asyncio.gather(
        *(s.update_state("budget:burst:o/r:ann", count_one) for _ in range(10) for s in (first, second))
    )
    assert sorted(results) == list(range(1, 21))
    assert await first.get_state("budget:burst:o/r:ann") == "20"


async def test_update_state_keeps_the_value_or_rolls_back(store: DeliveryStore) -> None:
    await store.set_state("k", "old")
    assert await store.update_state("k", lambda v: (None, v)) == "old"  # None: nothing written
    assert await store.update_state("missing", lambda v: (None, v)) is None
    assert await store.get_state("missing") is None

    def broken(_: str | None) -> tuple[str, int]:
        raise ValueError("no decision")

    with pytest.raises(ValueError):
        await store.update_state("k", broken)
    assert await store.update_state("k", lambda v: (f"{v}+new", v)) == "old"  # usable after a failure
    assert await store.get_state("k") == "old+new"


async def test_durable_across_close_and_reopen(factory: StoreFactory) -> None:
    first = await factory()
    assert await first.ping()
    await first.put("keep", "push", b'{"ref": "main"}', ordering_key="k")
    await first.set_state("s", "v")
    await first.close()
    second = await factory()
    got = await second.get("keep")
    assert got is not None and got.payload == b'{"ref": "main"}' and got.status == Status.PENDING
    assert await second.get_state("s") == "v"
    assert not await second.put("keep", "push", b"{}")


async def test_two_instances_share_one_queue(factory: StoreFactory) -> None:
    one, two = await factory(), await factory()
    await one.put("a1", "pull_request", b"{}", ordering_key="A")
    await two.put("a2", "pull_request", b"{}", ordering_key="A")
    assert not await two.put("a1", "pull_request", b"{}")
    assert [d.id for d in await two.claim("w2", limit=5)] == ["a1"]
    assert await one.claim("w1", limit=5) == []
    await two.complete("a1", "w2")
    assert [d.id for d in await one.claim("w1", limit=5)] == ["a2"]


async def test_extend_lease_keeps_only_a_held_lease(store: DeliveryStore) -> None:
    await store.put("d1", "push", b"{}")
    await store.claim("a", lease_seconds=0.0)
    assert len(await store.claim("b", lease_seconds=0.5)) == 1
    assert not await store.extend_lease("d1", "a", 10), "a lost its lease to b"
    assert await store.extend_lease("d1", "b", 10)
    await asyncio.sleep(0.6)  # past the claim's 0.5 s lease, inside the extended one
    assert await store.claim("c") == []
    await store.complete("d1", "b")
    assert not await store.extend_lease("d1", "b", 10), "a finished delivery has no lease"


async def test_a_handler_running_longer_than_the_lease_keeps_it(store: DeliveryStore) -> None:
    import gidgethub.routing

    from bot.service.worker import Worker
    from tests.service.conftest import FakeClients

    router = gidgethub.routing.Router()
    stolen: list[list[str]] = []

    @router.register("push")
    async def slow(event: object, gh: object, ctx: object) -> None:
        for _ in range(3):
            await asyncio.sleep(0.5)
            stolen.append([d.id for d in await store.claim("thief", limit=1)])

    await store.put("d1", "push", b"{}", installation_id=1)
    worker = Worker(store, FakeClients(), router, worker_id="w", lease_seconds=1.2)
    assert [o.status for o in await worker.drain()] == ["done"]
    assert stolen == [[], [], []]  # the 1.2 s lease was renewed (every 0.4 s) through the 1.5 s run
    done = await store.get("d1")
    assert done is not None and done.status is Status.DONE and done.attempts == 1
