"""The GitHub client, App auth and redelivery against the local GitHub simulator, with faults on.

* App auth end to end: the simulator verifies the App JWT and issues expiring tokens; the token
  endpoint is called once per installation.
* A fault test: about 20 % of the simulator's answers are 502s, secondary rate limits or 429s;
  every call of a small PR conversation still succeeds, and no write happens twice.
* Missed deliveries: the simulator drops half of the ``pull_request`` webhooks (recorded as failed,
  as GitHub records a delivery the bot did not answer); one redelivery pass after the outage
  gets every one of them into the store, once.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

pytest.importorskip("bot.sim.server", reason="the simulator is not on this branch yet")
sim_module = pytest.importorskip("bot.sim")

from bot.github.auth import GitHubApp  # noqa: E402
from bot.github.client import RetryPolicy  # noqa: E402
from bot.queue.postgres import PostgresStore  # noqa: E402
from bot.service.redeliver import redeliver_failed  # noqa: E402
from tests.github.conftest import Sleeper  # noqa: E402  (records waits, never waits)

REPO = "acme/fleet"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Any, Any, int]]:
    """A running simulator with acme/fleet, alice (writer) and the App installed on acme."""
    async with sim_module.Simulator(tmp_path / "gh", seed=11) as sim:
        driver = sim_module.Driver(sim)
        try:
            driver.user("alice")
            driver.org("acme", members=["alice"])
            driver.repo(REPO, collaborators={"alice": "write"})
            installation = driver.install("acme")
            await driver.push("alice", REPO, "main", {"README.md": "fleet\n"})
            yield sim, driver, installation.id
        finally:
            await driver.close()


def app_for(sim: Any, session: aiohttp.ClientSession, sleep: Sleeper) -> GitHubApp:
    return GitHubApp(
        session,
        app_id=str(sim.world.app_id),
        private_key=sim.private_key_pem.decode()
        if isinstance(sim.private_key_pem, bytes)
        else sim.private_key_pem,
        api_url=sim.base_url,
        retry=RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.05, total_seconds=120),
        sleep=sleep,
        monotonic=sleep.clock,
    )


async def test_app_auth_against_the_simulator(world: tuple[Any, Any, int]) -> None:
    sim, _, installation_id = world
    async with aiohttp.ClientSession() as session:
        app = app_for(sim, session, Sleeper())
        for _ in range(5):
            gh = await app.installation_api(installation_id)
            repo = await gh.getitem(f"/repos/{REPO}")
            assert repo["full_name"] == REPO
    assert sim.requests.count("POST", "/app/installations/{installation_id}/access_tokens") == 1


async def test_conversation_survives_twenty_percent_faults(world: tuple[Any, Any, int]) -> None:
    sim, driver, installation_id = world
    await driver.push("alice", REPO, "add-dev", {"clusters/dev.yaml": "name: dev\n"})
    number = await driver.open_pr("alice", REPO, "add-dev", title="Add dev")
    sim.faults.add(sim_module.FaultRule("error", probability=0.10, status=502))
    sim.faults.add(sim_module.FaultRule("error", probability=0.03, status=503))
    sim.faults.add(sim_module.FaultRule("secondary_rate_limit", probability=0.04, retry_after=2))
    sim.faults.add(sim_module.FaultRule("rate_limit_429", probability=0.04, retry_after=1))
    sleep = Sleeper()
    async with aiohttp.ClientSession() as session:
        app = app_for(sim, session, sleep)
        gh = await app.installation_api(installation_id)
        pr = await gh.getitem(f"/repos/{REPO}/pulls/{number}")
        for i in range(25):
            await gh.post(f"/repos/{REPO}/issues/{number}/comments", data={"body": f"note {i}"})
            again = await gh.getitem(f"/repos/{REPO}/pulls/{number}")
            assert again["head"]["sha"] == pr["head"]["sha"]
        for i in range(5):
            await gh.post(
                f"/repos/{REPO}/check-runs",
                data={
                    "name": f"gitops-bot/{i}",
                    "head_sha": pr["head"]["sha"],
                    "status": "completed",
                    "conclusion": "success",
                },
            )
        comments = [c async for c in gh.getiter(f"/repos/{REPO}/issues/{number}/comments")]
    faulted = [e for e in sim.requests.entries if e.fault]
    total = len(sim.requests.entries)
    assert len(faulted) >= 5, f"only {len(faulted)} of {total} answers were faults"
    assert sorted(c["body"] for c in comments) == sorted(f"note {i}" for i in range(25)), "each write once"
    assert len(driver.check_runs(REPO, number)) == 5
    assert any(s >= 1 for s in sleep.calls), "rate-limit answers were waited out"
    print(f"\nfault test: {len(faulted)} faults in {total} answers ({100 * len(faulted) / total:.0f} %)")


async def test_dropped_webhooks_are_redelivered_into_the_store(
    world: tuple[Any, Any, int], pg_dsn: str
) -> None:
    sim, driver, _ = world
    store = PostgresStore(pg_dsn)
    await store.open()
    secret = sim.webhook_secret.encode()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
            return web.Response(status=401)
        await store.put(request.headers["X-GitHub-Delivery"], request.headers["X-GitHub-Event"], body)
        return web.Response(status=202)

    receiver = web.Application()
    receiver.router.add_post("/webhook", receive)
    server = TestServer(receiver)
    await server.start_server()
    try:
        sim.set_webhook_url(str(server.make_url("/webhook")))
        sim.faults.add(sim_module.FaultRule("drop_webhook", route="pull_request", probability=0.5))
        for i in range(8):
            await driver.push("alice", REPO, f"change-{i}", {f"clusters/c{i}.yaml": f"name: c{i}\n"})
            await driver.open_pr("alice", REPO, f"change-{i}", title=f"Change {i}")
        sim.faults.clear()  # the outage is over
        async with aiohttp.ClientSession() as session:
            app = app_for(sim, session, Sleeper())
            gh = await app.app_api()
            listed = [d async for d in gh.getiter("/app/hook/deliveries?per_page=5")]
            wanted = {d["guid"] for d in listed if d["event"] == "pull_request"}
            missing = {g for g in wanted if await store.get(g) is None}
            assert missing, "the fault dropped some pull_request deliveries"
            report = await redeliver_failed(app, store)
            await sim.wait_for_webhooks()
            # Deliveries made before the receiver existed (set-up) failed too, and come back as well.
            assert missing <= set(report.redelivered)
            arrived = {g for g in wanted | set(report.redelivered) if await store.get(g) is not None}
            assert arrived == wanted | set(report.redelivered), "every failed delivery arrived"
            second = await redeliver_failed(app, store)
            assert second.redelivered == [], "nothing is redelivered twice"
        print(f"\nredelivery: {len(missing)} of {len(wanted)} pull_request deliveries dropped and recovered")
    finally:
        await server.close()
        await store.close()
