"""The worker: dispatch isolation, retries with backoff, dead letters, per-PR order, leases."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import gidgethub.routing
import pytest

from bot.queue.base import Status
from bot.queue.sqlite import SQLiteStore
from bot.service.context import HandlerContext
from bot.service.dispatch import dispatch_isolated
from bot.service.worker import Worker, backoff_delay
from tests.service.conftest import FakeClients
from tests.support.github import FakeGitHub, make_event


def _pr(number: int, action: str = "opened", repo: str = "o/r") -> bytes:
    return json.dumps(
        {
            "action": action,
            "installation": {"id": 1},
            "repository": {"full_name": repo},
            "pull_request": {"number": number},
        }
    ).encode()


def _worker(store: SQLiteStore, router: gidgethub.routing.Router, **kw: Any) -> Worker:
    kw.setdefault("backoff_base", 0.0)
    kw.setdefault("backoff_cap", 0.0)
    return Worker(store, FakeClients(), router, worker_id="w", poll_interval=0.01, **kw)


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    top = [backoff_delay(n, base=2, cap=60, rng=lambda: 1.0) for n in range(1, 9)]
    assert top == [2, 4, 8, 16, 32, 60, 60, 60]
    low = [backoff_delay(n, base=2, cap=60, rng=lambda: 0.0) for n in range(1, 4)]
    assert low == [1, 2, 4]
    assert backoff_delay(10_000, base=2, cap=600, rng=lambda: 1.0) == 600


async def test_one_failing_handler_does_not_stop_the_others() -> None:
    router = gidgethub.routing.Router()
    ran: list[str] = []

    @router.register("push")
    async def a_breaks(event: Any, gh: Any, ctx: Any) -> None:
        ran.append("a")
        raise ValueError("a is broken")

    @router.register("push")
    async def b_works(event: Any, gh: Any, ctx: Any) -> None:
        ran.append("b")

    @router.register("push")
    async def c_breaks_too(event: Any, gh: Any, ctx: Any) -> None:
        ran.append("c")
        raise KeyError("c")

    failures = await dispatch_isolated(router, make_event("push", {}), FakeGitHub(), None)
    assert sorted(ran) == ["a", "b", "c"]
    assert [f.handler.rsplit(".", 1)[-1] for f in failures] == ["a_breaks", "c_breaks_too"]
    assert "ValueError: a is broken" in failures[0].error


async def test_a_delivery_with_a_failing_handler_is_retried_then_dead_lettered(store: SQLiteStore) -> None:
    router = gidgethub.routing.Router()
    calls = {"ok": 0, "bad": 0}

    @router.register("pull_request")
    async def ok(event: Any, gh: Any, ctx: HandlerContext) -> None:
        calls["ok"] += 1

    @router.register("pull_request")
    async def bad(event: Any, gh: Any, ctx: HandlerContext) -> None:
        calls["bad"] += 1
        raise RuntimeError("GitHub said no")

    await store.put("d1", "pull_request", _pr(1), installation_id=1, ordering_key="o/r#1")
    worker = _worker(store, router, max_attempts=3)
    outcomes = await worker.drain()
    assert [o.status for o in outcomes] == ["retry", "retry", "dead"]
    assert calls == {"ok": 3, "bad": 3}  # the healthy handler ran every time
    d = await store.get("d1")
    assert d is not None and d.status is Status.DEAD and d.attempts == 3
    assert "RuntimeError: GitHub said no" in (d.last_error or "")
    # A dead letter can be put back and then succeeds once the handler is fixed.
    router2 = gidgethub.routing.Router()
    router2.add(ok, "pull_request")
    assert await store.retry("d1")
    assert [o.status for o in await _worker(store, router2).drain()] == ["done"]


async def test_retries_wait_for_their_backoff(store: SQLiteStore) -> None:
    router = gidgethub.routing.Router()

    @router.register("push")
    async def bad(event: Any, gh: Any, ctx: Any) -> None:
        raise RuntimeError("later")

    await store.put("d1", "push", b'{"installation": {"id": 1}}', installation_id=1)
    worker = _worker(store, router, backoff_base=3600, backoff_cap=7200, rng=lambda: 1.0)
    assert [o.status for o in await worker.drain()] == ["retry"]
    d = await store.get("d1")
    assert d is not None and d.status is Status.FAILED and d.next_attempt_at is not None
    assert 3500 < (d.next_attempt_at - d.updated_at).total_seconds() <= 3601  # type: ignore[operator]
    assert await worker.drain() == []  # not due yet


async def test_an_unreadable_payload_is_dead_at_once(store: SQLiteStore) -> None:
    router = gidgethub.routing.Router()
    await store.put("d1", "push", b"not json", installation_id=1)
    outcomes = await _worker(store, router).drain()
    assert [o.status for o in outcomes] == ["dead"]
    assert "not JSON" in ((await store.get("d1")).last_error or "")  # type: ignore[union-attr]


async def test_an_event_without_handlers_completes_without_a_token(store: SQLiteStore) -> None:
    router = gidgethub.routing.Router()
    await store.put("d1", "status", b"{}")
    clients = FakeClients(fail_with=AssertionError("no token needed"))
    worker = Worker(store, clients, router, worker_id="w")
    assert [o.status for o in await worker.drain()] == ["done"]


async def test_a_token_failure_is_retried(store: SQLiteStore) -> None:
    router = gidgethub.routing.Router()

    @router.register("push")
    async def h(event: Any, gh: Any, ctx: Any) -> None:
        return None

    await store.put("d1", "push", b"{}", installation_id=5)
    clients = FakeClients(fail_with=ConnectionError("GitHub unreachable"))
    worker = Worker(store, clients, router, worker_id="w", backoff_base=0, backoff_cap=0)
    assert [o.status for o in await worker.drain(max_rounds=1)] == ["retry"]
    assert "GitHub unreachable" in ((await store.get("d1")).last_error or "")  # type: ignore[union-attr]


async def test_deliveries_of_one_pull_request_run_in_order_others_in_parallel(store: SQLiteStore) -> None:
    router = gidgethub.routing.Router()
    log: list[tuple[str, str, str]] = []
    active: dict[str, int] = {}
    overlap: list[str] = []

    @router.register("pull_request")
    async def record(event: Any, gh: Any, ctx: HandlerContext) -> None:
        key = f"#{event.data['pull_request']['number']}"
        active[key] = active.get(key, 0) + 1
        if active[key] > 1:
            overlap.append(key)
        log.append((key, event.data["action"], "start"))
        await asyncio.sleep(0.01)
        log.append((key, event.data["action"], "end"))
        active[key] -= 1

    actions = ["opened", "synchronize", "edited", "closed"]
    for i, action in enumerate(actions):
        for pr in (1, 2, 3):
            await store.put(
                f"{pr}-{i}", "pull_request", _pr(pr, action), installation_id=1, ordering_key=f"o/r#{pr}"
            )
    worker = _worker(store, router, concurrency=8)
    task = asyncio.create_task(worker.run())
    for _ in range(500):
        if (await store.counts())[Status.DONE] == 12:
            break
        await asyncio.sleep(0.01)
    await worker.stop()
    task.cancel()
    assert (await store.counts())[Status.DONE] == 12
    assert overlap == []
    for pr in ("#1", "#2", "#3"):
        assert [a for k, a, s in log if k == pr and s == "start"] == actions
    # Different pull requests did overlap in time: the worker ran them concurrently.
    first_ends = min(i for i, e in enumerate(log) if e[2] == "end")
    assert len({k for k, _, s in log[:first_ends] if s == "start"}) > 1


async def test_a_later_delivery_waits_while_an_earlier_one_is_retrying(store: SQLiteStore) -> None:
    router = gidgethub.routing.Router()
    seen: list[str] = []
    fail_first = {"n": 1}

    @router.register("pull_request")
    async def h(event: Any, gh: Any, ctx: HandlerContext) -> None:
        if event.data["action"] == "opened" and fail_first["n"]:
            fail_first["n"] -= 1
            raise RuntimeError("transient")
        seen.append(event.data["action"])

    await store.put("a", "pull_request", _pr(1, "opened"), installation_id=1, ordering_key="o/r#1")
    await store.put("b", "pull_request", _pr(1, "synchronize"), installation_id=1, ordering_key="o/r#1")
    outcomes = await _worker(store, router).drain()
    assert [o.status for o in outcomes] == ["retry", "done", "done"]
    assert seen == ["opened", "synchronize"]


async def test_the_loop_wakes_on_new_work_and_stop_hands_back_running_work(store: SQLiteStore) -> None:
    router = gidgethub.routing.Router()
    started = asyncio.Event()

    @router.register("push")
    async def slow(event: Any, gh: Any, ctx: Any) -> None:
        started.set()
        await asyncio.sleep(3600)

    worker = Worker(store, FakeClients(), router, worker_id="w", poll_interval=3600)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.05)
    await store.put("d1", "push", b"{}", installation_id=1)
    worker.wake()
    await asyncio.wait_for(started.wait(), 5)
    await worker.stop(grace=0.05)
    task.cancel()
    d = await store.get("d1")
    assert d is not None and d.status is Status.FAILED and d.last_error == "interrupted by shutdown"
    # It is runnable again at once.
    assert [x.id for x in await store.claim("w2")] == ["d1"]


async def test_the_handler_context_carries_the_delivery(store: SQLiteStore) -> None:
    router = gidgethub.routing.Router()
    got: list[HandlerContext] = []

    @router.register("push")
    async def h(event: Any, gh: Any, ctx: HandlerContext) -> None:
        got.append(ctx)
        with pytest.raises(RuntimeError, match="no git mirror"):
            await ctx.repos.git_dir("o/r")

    await store.put("d1", "push", b"{}", installation_id=1)
    await _worker(store, router).drain()
    assert got[0].delivery_id == "d1" and got[0].store is store


# The lease heartbeat (a handler running longer than the lease) is in tests/queue/test_store_conformance.py,
# on SQLite and PostgreSQL.


def test_from_settings_takes_the_tuning_from_settings() -> None:
    from bot.service.settings import load_settings

    s = load_settings(
        {
            "GITOPS_BOT_WORKER_CONCURRENCY": "9",
            "GITOPS_BOT_MAX_ATTEMPTS": "3",
            "GITOPS_BOT_BACKOFF_BASE": "0.5",
            "GITOPS_BOT_BACKOFF_CAP": "30",
            "GITOPS_BOT_LEASE_SECONDS": "60",
            "GITOPS_BOT_POLL_INTERVAL": "0.2",
            "GITOPS_BOT_LOGIN": "my-app[bot]",
        },
        require_webhook_secret=False,
    )
    w = Worker.from_settings(s, None, None, gidgethub.routing.Router())
    assert (w.concurrency, w.max_attempts, w.backoff_base, w.backoff_cap) == (9, 3, 0.5, 30.0)
    assert (w.lease_seconds, w.poll_interval, w.bot_login, w.settings) == (60.0, 0.2, "my-app[bot]", s)


async def test_old_done_deliveries_are_pruned_dead_ones_kept(store: SQLiteStore) -> None:
    router = gidgethub.routing.Router()
    for did in ("old-done", "new-done", "old-dead"):
        await store.put(did, "status", b"{}")
    for d in await store.claim("w", limit=3):
        if d.id == "old-dead":
            await store.fail(d.id, "w", "x", None)
        else:
            await store.complete(d.id, "w")
    await store._run(lambda c: c.execute("UPDATE deliveries SET updated_at = 0 WHERE id LIKE 'old-%'"))
    worker = Worker(store, None, router, worker_id="w", retention_days=7)
    assert await worker.prune() == 1
    assert await store.get("old-done") is None
    assert await store.get("new-done") is not None and await store.get("old-dead") is not None
