"""End to end: ``python -m bot serve`` over HTTP and the local GitHub simulator.

A user opens a cluster-request pull request on a repository holding the example fleet. The
simulator delivers the signed ``pull_request`` webhook to the bot; the bot gets an installation
token through the App JWT flow, and its ``gitops-bot`` check run and sticky comment appear on the
simulator.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from bot.sim import Driver, Simulator
from tests.conftest import ROOT
from tests.hostile.serve_process import ServeProcess

pytestmark = pytest.mark.slow

REPO = "acme/fleet"
REQUEST = "clusters/dev/payments-dev-euw1/cluster.yaml"


async def _until(predicate: object, what: str, serve: ServeProcess, timeout: float = 90.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} never appeared; bot log:\n{serve.log_text()}")


async def test_opened_pr_gets_the_bots_check_run_and_sticky_comment(tmp_path: Path) -> None:
    async with Simulator(tmp_path / "gh", seed=1) as sim, Driver(sim, tmp_path / "driver") as driver:
        driver.user("alice")
        driver.org("acme", members=["alice"])
        driver.repo(REPO, collaborators={"alice": "write"})
        installation = driver.install("acme")
        await driver.push_dir("alice", REPO, "main", ROOT / "examples" / "fleet", message="The fleet")
        request = (ROOT / "examples" / "requests" / "good-dev-cluster.yaml").read_text()
        head = await driver.push(
            "alice", REPO, "payments-dev", {REQUEST: request}, message="payments-dev-euw1"
        )

        env = {
            "GITHUB_APP_ID": str(sim.world.app_id),
            "GITHUB_PRIVATE_KEY": sim.private_key_pem,
            "GITHUB_WEBHOOK_SECRET": sim.webhook_secret,
            "GITHUB_API_URL": sim.base_url,
            "GIT_URL": sim.base_url + "/{owner}/{repo}.git",
            "GITOPS_BOT_POLL_INTERVAL": "0.05",
        }
        serve = ServeProcess("bot", env, tmp_path, worker="inline")
        async with aiohttp.ClientSession() as session:
            await serve.start(session)
            try:
                sim.set_webhook_url(f"{serve.url}/webhook")
                mark = sim.requests.mark()
                number = await driver.open_pr("alice", REPO, "payments-dev", title="Add payments-dev-euw1")

                def finished() -> bool:
                    runs = [r for r in driver.check_runs(REPO, number) if r["name"] == "gitops-bot"]
                    bot_comments = [b for a, b in driver.comments(REPO, number) if a == sim.bot_login]
                    return bool(runs and runs[-1]["status"] == "completed" and bot_comments)

                await _until(finished, "the gitops-bot check run and sticky comment", serve)
            finally:
                serve.stop()

        opened = [d for d in sim.world.deliveries if d.event == "pull_request" and d.action == "opened"]
        assert [d.status for d in opened] == ["OK"]
        run = [r for r in driver.check_runs(REPO, number) if r["name"] == "gitops-bot"][-1]
        assert run["conclusion"] == "success", run
        assert sim.pull(REPO, number).head_sha == head
        sticky = [b for a, b in driver.comments(REPO, number) if a == sim.bot_login]
        assert len(sticky) == 1 and "<!-- gitops-bot:" in sticky[0]
        assert "payments-dev-euw1" in sticky[0]

        calls = sim.requests.since(mark)
        token_calls = [c for c in calls if c.route == "/app/installations/{installation_id}/access_tokens"]
        assert token_calls and all(c.actor == "app" and c.status == 201 for c in token_calls)
        assert token_calls[0].path == f"/app/installations/{installation.id}/access_tokens"
        writes = [c for c in calls if c.actor == sim.bot_login and c.method in ("POST", "PATCH")]
        assert {c.route for c in writes} >= {
            "/repos/{owner}/{repo}/check-runs",
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        }
        assert [c for c in calls if c.status == 401] == []
        page = driver.conversation(REPO, number)
        assert "[✔] gitops-bot: success" in page and "## Rendered diff" in page
