"""End-to-end crash test: the bot plays pull-request lifecycles on the simulator while SIGKILLed.

Two real ``python -m bot serve`` processes (worker in-process) share one PostgreSQL, behind the
simulator's webhook (the simulator delivers to one, the other only works the queue). Pull
requests are opened, pushed to and commented on, while the replicas are killed with SIGKILL at
random moments and restarted. Webhooks that arrive while a replica is down are recorded as
failed by the simulator; one redelivery pass (``bot.service.redeliver``) brings them back, as the bot
does at start-up. At the end, for every pull request: every head commit has exactly one
completed ``gitops-bot`` check run, no check run name appears twice on a commit, no sticky
comment exists twice, and the store holds no open or dead delivery — nothing lost, nothing twice.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

pytest.importorskip("bot.sim.server", reason="the simulator is not on this branch yet")
pytest.importorskip("bot.service.webhook", reason="the webhook service is not on this branch yet")
pytest.importorskip("handlers.pull_request", reason="the pull_request handler is not on this branch yet")

from bot.github.auth import GitHubApp
from bot.queue.base import Status
from bot.queue.postgres import PostgresStore
from bot.service.redeliver import redeliver_failed
from bot.sim import Driver, Simulator
from tests.hostile.serve_process import ServeProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = "acme/fleet"
PULL_REQUESTS = 4
KILLS = 4
MIRROR_GAP = "no git mirror is configured"
MARKER = re.compile(r"<!-- gitops-bot:(?P<key>[A-Za-z0-9_.:-]+?)(?: part (?P<n>\d+)/\d+)? -->")


async def settle(store: PostgresStore, timeout: float = 60.0) -> dict[Status, int]:
    """Wait until no delivery is pending, processing or waiting for a retry."""
    counts: dict[Status, int] = {}
    for _ in range(int(timeout / 0.2)):
        counts = await store.counts()
        if counts[Status.PENDING] + counts[Status.PROCESSING] + counts[Status.FAILED] == 0:
            return counts
        await asyncio.sleep(0.2)
    raise AssertionError(f"deliveries did not settle: {counts}")


async def test_lifecycles_end_correct_across_sigkills(pg_dsn: str, tmp_path: Path) -> None:
    async with Simulator(tmp_path / "gh", seed=3) as sim:
        driver = Driver(sim)
        try:
            driver.user("alice")
            driver.org("acme", members=["alice"])
            driver.repo(REPO, collaborators={"alice": "write"})
            driver.install("acme")
            await driver.push("alice", REPO, "main", {"README.md": "fleet\n"})
            key = (
                sim.private_key_pem.decode()
                if isinstance(sim.private_key_pem, bytes)
                else sim.private_key_pem
            )
            env = {
                "GITHUB_APP_ID": str(sim.world.app_id),
                "GITHUB_PRIVATE_KEY": key,
                "GITHUB_WEBHOOK_SECRET": sim.webhook_secret,
                "GITHUB_API_URL": sim.base_url,
                "GIT_URL": sim.base_url + "/{owner}/{repo}.git",
                "DATABASE_URL": pg_dsn,
                "GITOPS_BOT_LEASE_SECONDS": "3",
                "GITOPS_BOT_POLL_INTERVAL": "0.05",
                "GITOPS_BOT_BACKOFF_BASE": "0.2",
                "GITOPS_BOT_BACKOFF_CAP": "1",
            }
            replicas = [ServeProcess(n, env, tmp_path, worker="inline") for n in ("a", "b")]
            heads: dict[int, list[str]] = {}
            kills = 0
            async with aiohttp.ClientSession() as session:
                for r in replicas:
                    await r.start(session)
                sim.set_webhook_url(f"{replicas[0].url}/webhook")

                async def killer() -> None:
                    nonlocal kills
                    rng = random.Random(5)
                    while kills < KILLS:
                        await asyncio.sleep(rng.uniform(0.3, 1.2))
                        victim = rng.choice(replicas)
                        victim.kill()
                        kills += 1
                        await asyncio.sleep(rng.uniform(0.0, 0.5))
                        await victim.start(session)

                killing = asyncio.create_task(killer())
                try:
                    for i in range(PULL_REQUESTS):
                        branch = f"cluster-{i}"
                        first = await driver.push(
                            "alice", REPO, branch, {f"clusters/c{i}.yaml": f"name: c{i}\n"}
                        )
                        number = await driver.open_pr("alice", REPO, branch, title=f"Cluster {i}")
                        second = await driver.push(
                            "alice", REPO, branch, {f"clusters/c{i}.yaml": f"name: c{i}\nsize: 2\n"}
                        )
                        await driver.comment("alice", REPO, number, "Looks right to me.")
                        heads[number] = [first, second]
                    await killing
                finally:
                    killing.cancel()

                store = PostgresStore(pg_dsn)
                await store.open()
                try:
                    app = GitHubApp(
                        session, app_id=str(sim.world.app_id), private_key=key, api_url=sim.base_url
                    )
                    report = await redeliver_failed(app, store)
                    await sim.wait_for_webhooks()
                    counts = await settle(store)
                    dead = [
                        (d.event, d.action, (d.last_error or "")[:300])
                        for d in await store.recent(status=Status.DEAD)
                    ]
                finally:
                    await store.close()
                    for r in replicas:
                        r.stop()
        finally:
            await driver.close()

        assert kills == KILLS
        runs = [r for r in sim.world.runs.values() if r.repo == REPO]
        per_commit = Counter((r.head_sha, r.name) for r in runs)
        assert [k for k, n in per_commit.items() if n > 1] == [], "a check run was created twice"
        for number, shas in heads.items():
            for sha in shas:
                mine = [r for r in runs if r.head_sha == sha and r.name == "gitops-bot"]
                assert len(mine) == 1 and mine[0].status == "completed", f"PR #{number} {sha[:7]}: {mine}"
            markers = Counter(
                (m["key"], m["n"])
                for author, body in driver.comments(REPO, number)
                if author == sim.bot_login
                for m in [MARKER.search(body)]
                if m is not None
            )
            assert markers and all(n == 1 for n in markers.values()), f"PR #{number} comments: {markers}"
        print(
            f"\ncrash e2e: {PULL_REQUESTS} PR lifecycles, {kills} SIGKILLs, "
            f"{len(report.redelivered)} missed deliveries redelivered, store {dict(counts)}"
        )
        if dead and all(MIRROR_GAP in error for _, _, error in dead):
            pytest.xfail(
                f"{len(dead)} deliveries dead only because serve has no git mirror wired in ({MIRROR_GAP})"
            )
        assert counts[Status.DEAD] == 0, f"dead letters: {dead}"
