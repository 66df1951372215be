"""Attacks of issue 13 (items 3, 7, 8, 9) played end to end: the simulator and the real bot.

The bot runs as ``create_app`` on a local port (webhook, SQLite store, worker, git mirror,
every handler), as in :mod:`tests.e2e.test_lifecycle`; each test is one attack and what the
bot must do about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gidgethub.aiohttp import GitHubAPI

from bot.domain import budgets
from bot.domain.labels import HOLD_LABEL
from bot.service.app import METRICS
from bot.service.context import HandlerContext
from bot.sim.demo import REPO, DemoWorld, cluster_request
from bot.sim.driver import Driver
from bot.sim.server import Simulator
from handlers.governance import APPROVALS_CHECK, SIGNATURES_CHECK, evaluate_pull_request
from tests.governance.test_e2e_sim import sim_mirror

pytestmark = pytest.mark.slow


async def _open_request(world: DemoWorld, name: str = "payments-dev-euw1", *, docs_only: bool = False) -> int:
    """Open a cluster request PR on env/dev; ``docs_only`` opens a README change (nothing to render)."""
    d = world.driver
    await world.setup_fleet()
    path, text = ("docs/notes.md", f"# {name}\n") if docs_only else cluster_request(name)
    await d.push("alice", REPO, "req", {path: text}, base="env/dev")
    number = await d.open_pr("alice", REPO, "req", base="env/dev", title=f"Add {name}")
    await world.settle()
    return number


def _bot_replies(world: DemoWorld, number: int) -> list[str]:
    return [b for a, b in world.driver.comments(REPO, number) if a.endswith("[bot]") and "command-reply" in b]


async def test_a_command_hidden_in_markup_github_does_not_show_is_not_run(tmp_path: Path) -> None:
    """Item 9: `/hold` hidden in a link reference definition or an HTML attribute is not run."""
    async with DemoWorld(tmp_path, out=lambda _: None) as world:
        number = await _open_request(world)
        hidden = [
            "Looks fine to me.\n\n[ref]:\n/hold\n",
            'Looks fine.\n\n[ref]: https://example.com\n"\n/hold hidden in a link title\n"\n',
            'Nice <img src="x.png" alt="\n/hold hidden in an attribute\n"> work\n',
            "Shipping it.\n<!--\n/hold hidden in a comment\n-->\n",
        ]
        for body in hidden:
            await world.driver.comment("alice", REPO, number, body)
        await world.settle()
        assert HOLD_LABEL not in world.pr(number).labels
        assert _bot_replies(world, number) == []
        # What GitHub shows is still a command.
        await world.driver.comment("alice", REPO, number, "Wait for the freeze.\n\n/hold freeze")
        await world.settle()
        assert HOLD_LABEL in world.pr(number).labels
        [answer] = _bot_replies(world, number)
        assert "/hold freeze" in answer


GOV_REPO = "acme/fleet"
GOVERNANCE_CONFIG = """\
version: 1
signatures: {required: true, trust: github, web_flow: allow}
approvals:
  rules:
    - name: two reviewers
      paths: ["clusters/**"]
      require: {count: 2}
"""
Evaluate = Callable[[], Awaitable[dict[str, str]]]


@contextlib.asynccontextmanager
async def governed_pr(
    tmp_path: Path, *, committer_email: str | None = None
) -> AsyncIterator[tuple[Any, Evaluate]]:
    """A repository with GOVERNANCE_CONFIG and alice's PR on it; yields the driver and an evaluator.

    The governance handler runs against the simulator's REST API with an installation token and
    reads git from a mirror fetched over the simulator's smart HTTP, as in production.
    """
    async with (
        Simulator(tmp_path / "sim") as sim,
        Driver(sim, tmp_path / "driver") as d,
        aiohttp.ClientSession() as session,
    ):
        people = {"alice": "write", "pat": "write", "dave": "maintain", "rita": "read", "tom": "triage"}
        for login in people:
            d.user(login, email=f"{login}@example.com")
        d.org("acme", members=list(people))
        d.repo(GOV_REPO, collaborators=people)
        installation = d.install("acme")
        files = {".github/gitops-bot.yml": GOVERNANCE_CONFIG, "clusters/a.yaml": "a: 1\n"}
        await d.push("alice", GOV_REPO, "main", files)
        change = {"clusters/a.yaml": "a: 2\n"}
        await d.push("alice", GOV_REPO, "feature", change, base="main", committer_email=committer_email)
        number = await d.open_pr("alice", GOV_REPO, "feature")
        token = sim.installation_token(installation.id).value
        gh = GitHubAPI(session, "gitops-bot-tests", oauth_token=token, base_url=sim.base_url)
        mirrors = sim_mirror(sim.base_url, token, GOV_REPO, tmp_path / "mirrors")

        async def evaluate() -> dict[str, str]:
            pr = await gh.getitem(f"/repos/{GOV_REPO}/pulls/{number}")
            await evaluate_pull_request(gh, HandlerContext(repos=mirrors), GOV_REPO, pr)
            return {r["name"]: r["conclusion"] for r in d.check_runs(GOV_REPO, number)}

        d.number = number
        yield d, evaluate


async def test_approvals_from_people_without_write_do_not_count(tmp_path: Path) -> None:
    """Item 7: a read and a triage user cannot satisfy a two-reviewer rule (GitHub would not count them)."""
    async with governed_pr(tmp_path) as (d, evaluate):
        await d.approve("rita", GOV_REPO, d.number)  # read
        await d.approve("tom", GOV_REPO, d.number)  # triage
        assert (await evaluate())[APPROVALS_CHECK] == "failure"
        await d.approve("pat", GOV_REPO, d.number)  # write
        assert (await evaluate())[APPROVALS_CHECK] == "failure"
        await d.approve("dave", GOV_REPO, d.number)  # maintain
        assert (await evaluate())[APPROVALS_CHECK] == "success"


async def test_a_forged_web_flow_committer_is_not_trusted(tmp_path: Path) -> None:
    """Item 7: an unsigned commit claiming committer noreply@github.com is not a web-flow commit."""
    async with governed_pr(tmp_path, committer_email="noreply@github.com") as (_, evaluate):
        assert (await evaluate())[SIGNATURES_CHECK] == "failure"


async def test_refused_commands_get_one_reply_per_pull_request_per_hour(tmp_path: Path) -> None:
    """Item 8: a read-only user spamming commands cannot make the bot spam the PR back."""
    async with DemoWorld(tmp_path, out=lambda _: None) as world:
        number = await _open_request(world, docs_only=True)
        for _ in range(4):
            await world.driver.comment("mallory", REPO, number, "/hold")  # mallory has read access
        await world.settle()
        replies = _bot_replies(world, number)
        assert len(replies) == 1 and "Only people with write" in replies[0]
        assert HOLD_LABEL not in world.pr(number).labels


async def test_a_command_burst_is_cut_off_per_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 8: one person's flood of commands runs at most the burst limit of them, then one notice."""
    limit = 3  # the handler reads the limit at each command; 3 instead of 10 keeps the test short
    monkeypatch.setattr(budgets, "BURST_LIMIT", limit)
    async with DemoWorld(tmp_path, out=lambda _: None) as world:
        number = await _open_request(world, docs_only=True)
        for _ in range(limit + 3):
            await world.driver.comment("alice", REPO, number, "/help")
        await world.settle()
        replies = _bot_replies(world, number)
        assert sum("| Command |" in r or "/promote" in r for r in replies) == limit
        assert len(replies) == limit + 1
        assert "not running more for now" in replies[-1]


async def test_a_nearly_spent_quota_postpones_comments_not_check_runs(tmp_path: Path) -> None:
    """Item 8: with the installation's quota nearly spent, check runs still go out; comments wait."""
    async with DemoWorld(tmp_path, out=lambda _: None) as world:
        number = await _open_request(world)
        sim = world.sim
        # Someone has burnt the installation's hourly quota: 45 requests are left.
        for value, token in list(sim.world.tokens.items()):
            if token.kind == "installation":
                sim._rate[value] = (sim.rate_limit - 45, int(time.time()) + 3600)
        path, text = cluster_request("payments-dev-euw1")
        head = await world.driver.push("alice", REPO, "req", {path: text + "# more\n"})
        await world.driver.comment("alice", REPO, number, "/help")
        metrics = world.app[METRICS]

        def done() -> bool:
            runs = world.driver.check_runs(REPO, number) if world.pr(number).head_sha == head else []
            deferred = metrics.registry.get_sample_value(
                "gitops_bot_github_deferred_writes_total", {"kind": "comment"}
            )
            return bool(runs) and all(r["status"] == "completed" for r in runs) and bool(deferred)

        for _ in range(600):
            if done():
                break
            await asyncio.sleep(0.1)
        assert done(), "check runs at the new head, and a postponed comment"
        assert metrics.registry.get_sample_value("gitops_bot_github_rate_limit_low") == 1.0
        assert _bot_replies(world, number) == []  # the /help reply waits for the quota
