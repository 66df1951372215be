"""End to end on the simulator: a `when: dangerous` approval rule gets its facts from the bot's own diff.

The governance handler evaluates approvals on review events without the rendered diff; the PR
checks (:func:`handlers.pull_request.check_pull_request`) render it, record the head's dangers in the
bot's store and evaluate the approvals again. Until then a `when: dangerous` rule waits (fail
closed); then it applies only when the diff destroys or replaces something.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gidgethub.aiohttp import GitHubAPI

from bot.service.context import HandlerContext
from handlers.governance import APPROVALS_CHECK, evaluate_pull_request
from handlers.pull_request import check_pull_request
from tests.governance.test_e2e_sim import sim_mirror
from tests.support.store import StateStore

sim_server = pytest.importorskip("bot.sim.server")
sim_driver = pytest.importorskip("bot.sim.driver")

pytestmark = pytest.mark.slow
REPO = "acme/fleet"
CONFIG = """\
version: 1
approvals:
  codeowners: false
  rules:
    - name: destroys
      when: dangerous
      require: {count: 1, users: [sre-lead]}
    - name: review
      require: {count: 1}
"""
CLUSTER = """\
apiVersion: eks.services.k8s.aws/v1alpha1
kind: Cluster
metadata: {name: prod, namespace: infra}
spec:
  name: prod
  version: "1.31"
  roleARN: arn:aws:iam::111122223333:role/eks
  resourcesVPCConfig: {subnetIDs: [subnet-1, subnet-2]}
"""
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: infra}\ndata: {a: '1'}\n"


async def test_deleting_a_cluster_needs_the_extra_approval_a_benign_pr_does_not(tmp_path: Path) -> None:
    async with (
        sim_server.Simulator(tmp_path / "sim") as sim,
        sim_driver.Driver(sim, tmp_path / "driver") as d,
        aiohttp.ClientSession() as session,
    ):
        for login in ("alice", "bob", "sre-lead"):
            d.user(login, email=f"{login}@example.com")
        d.org("acme", members=["alice", "bob", "sre-lead"])
        d.repo(REPO, collaborators={"alice": "write", "bob": "write", "sre-lead": "write"})
        installation = d.install("acme")
        await d.push(
            "alice",
            REPO,
            "main",
            {
                ".github/gitops-bot.yml": CONFIG,
                "clusters/prod/kustomization.yaml": "resources:\n  - cluster.yaml\n  - settings.yaml\n",
                "clusters/prod/cluster.yaml": CLUSTER,
                "clusters/prod/settings.yaml": CONFIGMAP,
            },
        )
        token = sim.installation_token(installation.id).value
        gh = GitHubAPI(session, "gitops-bot-tests", oauth_token=token, base_url=sim.base_url)
        ctx = HandlerContext(
            repos=sim_mirror(sim.base_url, token, REPO, tmp_path / "mirrors"), store=StateStore()
        )

        async def approvals(number: int, *, checks: bool = False) -> dict[str, Any]:
            pr = await gh.getitem(f"/repos/{REPO}/pulls/{number}")
            if checks:
                await check_pull_request(gh, ctx, repo=REPO, pr=pr)
            else:  # a review event: governance alone
                await evaluate_pull_request(gh, ctx, REPO, pr)
            return {r["name"]: r for r in d.check_runs(REPO, number)}[APPROVALS_CHECK]

        # the cluster goes: the rendered diff has delete.cluster
        await d.push(
            "alice",
            REPO,
            "drop-prod",
            {
                "clusters/prod/kustomization.yaml": "resources:\n  - settings.yaml\n",
                "clusters/prod/cluster.yaml": None,
            },
            base="main",
        )
        drop = await d.open_pr("alice", REPO, "drop-prod")
        await d.approve("bob", REPO, drop)
        run = await approvals(drop)  # before the diff: the dangerous rule waits, never satisfied
        assert run["conclusion"] == "failure" and "waiting for the rendered diff" in run["summary"]
        run = await approvals(drop, checks=True)
        assert run["conclusion"] == "failure" and "delete.cluster" in run["summary"]
        assert "waiting for the rendered diff" not in run["summary"] and "sre-lead" in run["summary"]
        await d.approve("sre-lead", REPO, drop)
        assert (await approvals(drop))["conclusion"] == "success"

        # a benign change: once the bot rendered it, the dangerous rule does not apply
        await d.push(
            "alice",
            REPO,
            "tweak",
            {"clusters/prod/settings.yaml": CONFIGMAP.replace("'1'", "'2'")},
            base="main",
        )
        tweak = await d.open_pr("alice", REPO, "tweak")
        await d.approve("bob", REPO, tweak)
        assert (await approvals(tweak))["conclusion"] == "failure"  # fail closed until the diff is known
        run = await approvals(tweak, checks=True)
        assert run["conclusion"] == "success" and "destroys" not in run["summary"]

        # a push: the dangers recorded for the old head say nothing about the new one
        await d.push("alice", REPO, "tweak", {"clusters/prod/cluster.yaml": None})
        run = await approvals(tweak)
        assert run["conclusion"] == "failure" and "waiting for the rendered diff" in run["summary"]
