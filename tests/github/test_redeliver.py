"""Missed deliveries: list the App's hook deliveries, redeliver the failed ones once, skip the rest."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.github.auth import GitHubApp
from bot.github.client import RetryPolicy
from bot.queue.postgres import PostgresStore
from bot.service.redeliver import (
    STATE_LAST_CHECKED,
    HookDelivery,
    plan_redeliveries,
    redeliver_failed,
    redelivery_task,
)
from tests.github.conftest import Sleeper
from tests.github.fakegh import FakeGitHub

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def item(id_: int, guid: str, minutes_ago: float, code: int, *, redelivery: bool = False) -> dict[str, Any]:
    return {
        "id": id_,
        "guid": guid,
        "delivered_at": (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "redelivery": redelivery,
        "duration": 0.1,
        "status": "OK" if 200 <= code < 300 else "failed to connect",
        "status_code": code,
        "event": "pull_request",
        "action": "opened",
        "installation_id": 7,
        "repository_id": 1,
    }


PAGE1 = [
    item(201, "A", 10, 502),
    item(202, "B", 5, 202, redelivery=True),
    item(203, "C", 12, 202),
    item(204, "D", 15, 0),
    item(205, "E", 16, 504),
    item(206, "H", 17, 500),
    {"id": "not-a-number"},
]
PAGE2 = [
    item(207, "B", 20, 502),
    item(208, "D", 30, 502),
    *[item(210 + i, "G", 40 + i, 502) for i in range(5)],
    item(220, "F", 180, 502),
]


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(pg_dsn)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def github(fake: FakeGitHub, base_url: str) -> FakeGitHub:
    def listing(request: web.Request) -> tuple[int, dict[str, str], Any]:
        fake.check_jwt(request)
        if request.query.get("cursor") == "p2":
            return 200, {}, PAGE2
        link = f'<{base_url}/app/hook/deliveries?per_page=100&cursor=p2>; rel="next"'
        return 200, {"Link": link}, PAGE1

    fake.script[("GET", "/app/hook/deliveries")] = [listing]
    for id_ in (201, 204):
        fake.script[("POST", f"/app/hook/deliveries/{id_}/attempts")] = [(202, {}, {})]
    fake.script[("POST", "/app/hook/deliveries/206/attempts")] = [(422, {}, {"message": "too old"})]
    return fake


def app_for(
    session: aiohttp.ClientSession, base_url: str, keypair: tuple[str, str], sleep: Sleeper
) -> GitHubApp:
    return GitHubApp(
        session,
        app_id="4242",
        private_key=keypair[0],
        api_url=base_url,
        retry=RetryPolicy(max_attempts=2, base_delay=0.01),
        sleep=sleep,
        monotonic=sleep.clock,
    )


def posted(fake: FakeGitHub) -> list[str]:
    return [p.split("/")[4] for p in fake.paths("POST")]


async def test_redelivers_each_failed_guid_once(
    session: aiohttp.ClientSession,
    base_url: str,
    github: FakeGitHub,
    keypair: tuple[str, str],
    store: PostgresStore,
    sleeper: Sleeper,
) -> None:
    await store.put("E", "pull_request", b"{}")  # stored, but GitHub recorded our late answer as a failure
    app = app_for(session, base_url, keypair, sleeper)
    report = await redeliver_failed(app, store, now=NOW)
    assert posted(github) == ["206", "204", "201"], "oldest first; the latest failed attempt of D"
    assert report.redelivered == ["D", "A"]
    assert report.errors == ["H"]
    assert report.already_stored == ["E"]
    assert report.gave_up == ["G"]
    assert report.scanned == len(PAGE1) + len(PAGE2)
    assert await store.get_state(STATE_LAST_CHECKED) == NOW.isoformat()


async def test_next_pass_starts_from_last_check(
    session: aiohttp.ClientSession,
    base_url: str,
    github: FakeGitHub,
    keypair: tuple[str, str],
    store: PostgresStore,
    sleeper: Sleeper,
) -> None:
    app = app_for(session, base_url, keypair, sleeper)
    await redeliver_failed(app, store, now=NOW)
    github.seen.clear()
    report = await redeliver_failed(app, store, now=NOW + timedelta(minutes=5))
    assert posted(github) == [], "failures before the last check (minus overlap) are not asked again"
    assert report.redelivered == []


async def test_only_one_replica_per_period(
    session: aiohttp.ClientSession,
    base_url: str,
    github: FakeGitHub,
    keypair: tuple[str, str],
    store: PostgresStore,
    sleeper: Sleeper,
) -> None:
    app = app_for(session, base_url, keypair, sleeper)
    first = await redeliver_failed(app, store, now=NOW, owner="r1")
    second = await redeliver_failed(app, store, now=NOW + timedelta(seconds=30), owner="r2")
    assert first.redelivered and not first.skipped_lease
    assert second.skipped_lease and second.scanned == 0
    third = await redeliver_failed(app, store, now=NOW + timedelta(minutes=10), owner="r2")
    assert not third.skipped_lease, "an expired lease is taken over"


async def test_a_restarted_replica_does_not_wait_for_a_dead_ones_lease(
    session: aiohttp.ClientSession,
    base_url: str,
    github: FakeGitHub,
    keypair: tuple[str, str],
    store: PostgresStore,
    sleeper: Sleeper,
) -> None:
    app = app_for(session, base_url, keypair, sleeper)
    await redeliver_failed(app, store, now=NOW, owner="killed-replica")
    github.seen.clear()
    # The holder was SIGKILLed; its successor's start-up pass runs at once (force), with its own lease.
    restarted = await redeliver_failed(app, store, now=NOW + timedelta(seconds=5), owner="new", force=True)
    assert not restarted.skipped_lease and restarted.scanned > 0
    later = await redeliver_failed(app, store, now=NOW + timedelta(seconds=10), owner="killed-replica")
    assert later.skipped_lease, "the forced pass took the lease"


async def test_background_task_survives_a_github_outage(
    session: aiohttp.ClientSession,
    base_url: str,
    fake: FakeGitHub,
    keypair: tuple[str, str],
    store: PostgresStore,
    sleeper: Sleeper,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.script[("GET", "/app/hook/deliveries")] = [(503, {}, "down")]
    app = app_for(session, base_url, keypair, sleeper)
    caplog.set_level(logging.WARNING, logger="bot.service.redeliver")
    async with redelivery_task(app, store, interval=0.05) as task:
        for _ in range(200):
            if len(fake.paths("GET")) >= 4:
                break
            await asyncio.sleep(0.01)
        assert not task.done()
    assert task.done()
    assert len(fake.paths("GET")) >= 4, "passes repeat after a failure"
    assert "redelivery pass failed: GitHubBroken" in caplog.text
    assert await store.get_state(STATE_LAST_CHECKED) is None, "a failed pass does not move the window"


def test_plan_is_pure_and_ignores_old_failures() -> None:
    attempts = [x for x in (HookDelivery.from_api(i) for i in PAGE1 + PAGE2) if x is not None]
    chosen, gave_up = plan_redeliveries(attempts, since=NOW - timedelta(hours=1))
    assert [a.id for a in chosen] == [206, 205, 204, 201]
    assert gave_up == ["G"]
    chosen_all, _ = plan_redeliveries(attempts, since=None, max_attempts=100)
    assert {a.guid for a in chosen_all} == {"A", "D", "E", "F", "G", "H"}


@pytest.mark.parametrize("bad", [None, [], {"id": 1}, {"id": 1, "guid": "x", "delivered_at": "yesterday"}])
def test_unreadable_records_are_skipped(bad: object) -> None:
    assert HookDelivery.from_api(bad) is None


async def test_cleanup_ctx_runs_a_pass_while_the_app_lives(
    session: aiohttp.ClientSession,
    base_url: str,
    github: FakeGitHub,
    keypair: tuple[str, str],
    store: PostgresStore,
    sleeper: Sleeper,
) -> None:
    from aiohttp.test_utils import TestServer

    from bot.service.redeliver import cleanup_ctx

    clients_key = web.AppKey("clients", GitHubApp)
    store_key = web.AppKey("store", PostgresStore)
    app = web.Application()
    app[clients_key] = app_for(session, base_url, keypair, sleeper)
    app[store_key] = store
    app.cleanup_ctx.append(
        cleanup_ctx(clients_key, store_key, interval=60, initial_lookback=timedelta(days=30))
    )
    server = TestServer(app)
    await server.start_server()
    try:
        for _ in range(300):
            if await store.get_state(STATE_LAST_CHECKED):
                break
            await asyncio.sleep(0.01)
    finally:
        await server.close()
    assert await store.get_state(STATE_LAST_CHECKED) is not None
    assert "/app/hook/deliveries" in github.paths("GET")

    bare = web.Application()
    bare[store_key] = store
    bare.cleanup_ctx.append(cleanup_ctx(clients_key, store_key))
    calls = len(github.seen)
    server = TestServer(bare)
    await server.start_server()
    await server.close()
    assert len(github.seen) == calls, "without App clients no pass runs, and start-up still works"
