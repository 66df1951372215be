"""A cluster request's whole life on the simulator, with the real bot over HTTP (in-process).

The bot runs as ``create_app`` on a local port (webhook, SQLite store, worker, git mirror over
the simulator's smart HTTP, every handler, the reconciler) and gets its installation token
through the App JWT flow; people act through the simulator's driver.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.git.files import rev_parse
from bot.sim.demo import HEALTH_CONTEXT, REPO, REQUESTS, DemoWorld, play
from bot.sim.faults import FaultRule

pytestmark = pytest.mark.slow


async def test_the_demo_story_from_request_to_prod(tmp_path: Path) -> None:
    lines: list[str] = []
    async with DemoWorld(tmp_path, out=lines.append) as world:
        result = await play(world)
        request = result["request"]
        # The bad request was annotated on its lines, then the fix passed.
        text = "\n".join(lines)
        assert "cluster.yaml:15  EKSCluster: Kubernetes 1.29 is out of EKS support" in text
        assert "secrets.plaintext" in text or "carries stringData in Git" in text
        assert world.checks(request)["gitops-bot/validate"] == "success"
        # Commands: a read-only user is refused politely; an unknown command gets the help.
        replies = [body for author, body in world.driver.comments(REPO, request) if author.endswith("[bot]")]
        assert any("Only people with write, maintain or admin permission" in r for r in replies)
        assert any("I don't know the command `/deploy`" in r for r in replies)
        # Exactly one sticky diff comment on the request, however many pushes and commands.
        assert sum(1 for r in replies if "## Rendered diff" in r) == 1
        # dev -> staging (merged by the bot) -> prod (held, approved, merged by a person).
        promoted = (request, result["staging"], result["prod"])
        assert {n: result["states"][n] for n in promoted} == dict.fromkeys(promoted, "merged")
        # Then the upgrade chapter (tests/e2e/test_demo_upgrade.py looks at it closely): every one
        # of its pull requests merged too.
        upgrade = result["upgrade"]
        assert upgrade["phase"] == "done"
        assert all(result["states"][n] == "merged" for n in (*upgrade["steps"], upgrade["rollback"]))
        staging = world.pr(result["staging"])
        assert staging.merged_by == "gitops-bot[bot]" and staging.title.startswith(
            f"Promote #{request} to staging"
        )
        assert world.pr(result["prod"]).merged_by == "carol"
        assert "/hold" in text and "On hold" in text


async def test_a_dropped_merge_webhook_and_a_red_gate(tmp_path: Path) -> None:
    async with DemoWorld(tmp_path, out=lambda _: None, reconcile_interval=1.0) as world:
        d = world.driver
        await world.setup_fleet()
        request = (REQUESTS / "good-dev-cluster.yaml").read_text()
        await d.push(
            "alice", REPO, "req", {"clusters/dev/payments-dev-euw1/cluster.yaml": request}, base="env/dev"
        )
        number = await d.open_pr("alice", REPO, "req", base="env/dev", title="Add payments dev")
        await d.approve("bob", REPO, number)
        await d.approve("dave", REPO, number)
        await world.settle()
        # GitHub loses the `pull_request closed` delivery of the merge.
        world.sim.add_fault(FaultRule(kind="drop_webhook", route="pull_request", times=1))
        merged = await d.merge("bob", REPO, number, "merge")
        # The reconciler finds the merged PR whose promotion is missing and opens it.
        assert await world.until(lambda: world.promotion_into("env/staging") is not None, "reconciler", 60)
        promotion = world.promotion_into("env/staging")
        assert promotion is not None
        # Flux reports dev red: the health gate fails and nothing merges.
        await d.api(
            "bob",
            "POST",
            f"/repos/{REPO}/statuses/{merged['sha']}",
            {"state": "failure", "context": HEALTH_CONTEXT},
        )
        await world.settle()
        assert world.checks(promotion.number)["gitops-bot/promotion"] in {"failure", "in_progress", "queued"}
        assert not world.pr(promotion.number).merged
        # Green again: after the soak the bot merges, and the prod promotion follows.
        head = rev_parse(world.sim.world.repos[REPO].path, "refs/heads/env/dev")
        await d.api(
            "bob", "POST", f"/repos/{REPO}/statuses/{head}", {"state": "success", "context": HEALTH_CONTEXT}
        )
        assert await world.until(lambda: world.pr(promotion.number).merged, "the staging merge", 60)
        assert await world.until(
            lambda: world.promotion_into("env/prod") is not None, "the prod promotion", 30
        )
        # Nothing twice: one promotion PR per environment.
        titles = [p.title for p in world.open_prs()]
        assert sum(t.startswith(f"Promote #{number} to staging") for t in titles) == 1
        assert sum(t.startswith(f"Promote #{number} to prod") for t in titles) == 1
