"""End to end on the simulator: a prod PR stays blocked until the right team approves.

Skipped until the simulator (``bot.sim``) is on the branch. The handler runs against the
simulator's REST API with an installation token, and reads git from a bare mirror fetched
over the simulator's smart HTTP, exactly as in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gidgethub.aiohttp import GitHubAPI

from bot.service.context import HandlerContext
from handlers.governance import APPROVALS_CHECK, SIGNATURES_CHECK, evaluate_pull_request
from tests.support.repos import FakeRepoAccess

sim_server = pytest.importorskip("bot.sim.server")
sim_driver = pytest.importorskip("bot.sim.driver")

pytestmark = pytest.mark.slow
GIT_ENV = {
    "PATH": "/usr/bin:/bin",
    "GIT_TERMINAL_PROMPT": "0",
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
}
REPO = "acme/fleet"
CONFIG = """\
version: 1
signatures: {required: true, trust: keys}
approvals:
  rules:
    - name: prod
      paths: ["clusters/prod/**"]
      require: {count: 1, teams: [acme/platform-team]}
"""


def sim_mirror(base_url: str, token: str, full_name: str, root: Path) -> FakeRepoAccess:
    """RepoAccess over the simulator: a bare mirror fetched (with the refs asked for) on every call."""
    url = base_url.replace("http://", f"http://x-access-token:{token}@") + f"/{full_name}.git"
    return FakeRepoAccess(remote=url, mirror=root / f"{full_name.replace('/', '__')}.git", fetch_refs=True)


async def test_prod_pr_needs_the_platform_team_and_goes_stale_on_push(tmp_path: Path) -> None:
    async with (
        sim_server.Simulator(tmp_path / "sim") as sim,
        sim_driver.Driver(sim, tmp_path / "driver") as d,
        aiohttp.ClientSession() as session,
    ):
        for login in ("alice", "pat", "mallory"):
            d.user(login, email=f"{login}@example.com")
        d.org("acme", members=["alice", "pat", "mallory"])
        d.team("acme", "platform-team", members=["pat"])
        d.repo(REPO, collaborators={"alice": "write", "pat": "write", "mallory": "write"})
        installation = d.install("acme")
        key = d.ssh_key("alice")
        allowed = f"alice@example.com {' '.join(key.public.split()[:2])}\n"
        files = {
            ".github/gitops-bot.yml": CONFIG,
            ".github/allowed_signers": allowed,
            "clusters/prod/a.yaml": "x: 1\n",
        }
        await d.push("alice", REPO, "main", files)
        await d.push("alice", REPO, "feature", {"clusters/prod/a.yaml": "x: 2\n"}, base="main", sign=key)
        number = await d.open_pr("alice", REPO, "feature")
        token = sim.installation_token(installation.id).value
        gh = GitHubAPI(session, "gitops-bot-tests", oauth_token=token, base_url=sim.base_url)
        mirrors = sim_mirror(sim.base_url, token, REPO, tmp_path / "mirrors")
        rest_calls: list[int] = []
        check_run_calls: list[tuple[int, int]] = []  # (lists of the head's runs, writes) per evaluation

        async def evaluate() -> dict[str, Any]:
            pr = await gh.getitem(f"/repos/{REPO}/pulls/{number}")
            mark = sim.requests.mark()
            await evaluate_pull_request(gh, HandlerContext(repos=mirrors), REPO, pr)
            git_routes = (".git/info/refs", "upload-pack")
            calls = [e for e in sim.requests.since(mark) if not e.route.endswith(git_routes)]
            rest_calls.append(len(calls))
            check_run_calls.append(
                (
                    sum(1 for e in calls if e.route == "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
                    sum(1 for e in calls if e.route.startswith("/repos/{owner}/{repo}/check-runs")),
                )
            )
            return {r["name"]: r["conclusion"] for r in d.check_runs(REPO, number)}

        assert await evaluate() == {SIGNATURES_CHECK: "success", APPROVALS_CHECK: "failure"}
        await d.approve("mallory", REPO, number)  # not in the team
        assert (await evaluate())[APPROVALS_CHECK] == "failure"
        await d.approve("pat", REPO, number)
        assert (await evaluate())[APPROVALS_CHECK] == "success"
        await d.push("alice", REPO, "feature", {"clusters/prod/a.yaml": "x: 3\n"}, sign=key)
        assert await evaluate() == {SIGNATURES_CHECK: "success", APPROVALS_CHECK: "failure"}
        await d.approve("pat", REPO, number)
        assert (await evaluate())[APPROVALS_CHECK] == "success"
        await d.push("alice", REPO, "feature", {"clusters/prod/b.yaml": "y: 1\n"})  # unsigned
        assert (await evaluate())[SIGNATURES_CHECK] == "failure"
        print(f"REST calls per evaluation: {rest_calls}; check runs (lists, writes): {check_run_calls}")
        # One list of the head's check runs per evaluation (pinned), and a write only for a run whose
        # result changed: mallory's approval changes nothing, pat's changes approvals only, and each
        # push makes a new head with two new runs.
        assert check_run_calls == [(1, 2), (1, 0), (1, 1), (1, 2), (1, 1), (1, 2)]
        # reviews + check-runs list + those writes, plus one membership and one permission lookup
        # per reviewer (approvals count only from people with write permission)
        assert rest_calls == [4, 4, 7, 8, 7, 8]
