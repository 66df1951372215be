"""One cluster request from dev to prod through its gates: a dropped webhook, a red gate, a hold."""

from __future__ import annotations

from bot.domain.labels import HOLD_LABEL
from bot.domain.promotion.plan import read_marker
from handlers.promotion import reconcile_promotions
from tests.promotion.conftest import CLUSTER, World, ago

JOURNEY = """\
version: 1
environments:
  - name: dev
    branch: env/dev
    auto_merge: true
    gates: {health: {contexts: [flux/dev]}, soak: 30m}
  - name: staging
    branch: env/staging
    auto_merge: true
    gates: {health: {contexts: [flux/staging]}}
  - name: prod
    branch: env/prod
    gates: {approvals: [prod-owners]}
approvals:
  rules: [{name: prod-owners, require: {count: 1, min_permission: maintain}}]
"""


def _open_promotion(world: World, env: str) -> dict:
    (pr,) = [
        p
        for p in world.gh.pulls.values()
        if p["head"]["ref"].startswith(f"gitops-bot/promote/{env}/") and p["state"] == "open"
    ]
    return pr


async def test_cluster_request_reaches_prod_through_its_gates(world: World) -> None:
    world.repo.commit_on("main", {".github/gitops-bot.yml": JOURNEY}, "journey config")
    cluster = CLUSTER.format(name="team-a", size=3)
    n = world.change(
        "request/team-a", "env/dev", {"clusters/team-a.yaml": cluster}, "Add team-a", merged_ago=45
    )
    dev_sha = world.gh.pulls[n]["merge_commit_sha"]

    # the merge webhook is lost; the reconciler finds the missing promotion
    await reconcile_promotions(world.gh, world.ctx, repo="org/fleet")
    staging = _open_promotion(world, "staging")

    # Flux reports dev red: the gate fails, nothing merges
    world.gh.set_status(
        dev_sha, "flux/dev", "failure", updated_at=ago(minutes=40), description="apply failed"
    )
    await world.dispatch("status", {"sha": dev_sha, "state": "failure", "context": "flux/dev"})
    assert not staging["merged"]
    runs = [r for r in world.gh.check_runs.values() if r["head_sha"] == staging["head"]["sha"]]
    assert max(runs, key=lambda r: r["id"])["conclusion"] == "failure"

    # fixed and green for 35 minutes: soak holds, staging merges itself, prod's promotion opens
    world.gh.set_status(dev_sha, "flux/dev", "success", updated_at=ago(minutes=35), description="applied")
    await world.dispatch("status", {"sha": dev_sha, "state": "success", "context": "flux/dev"})
    assert staging["merged"]
    assert world.repo.read("refs/heads/env/staging", "clusters/team-a.yaml") == cluster
    prod = _open_promotion(world, "prod")
    assert prod["title"] == f"Promote #{n} to prod: Add team-a"

    # someone holds prod; staging turns green; an owner approves: still held
    prod["labels"].append({"name": HOLD_LABEL})
    await world.dispatch(
        "pull_request", {"action": "labeled", "pull_request": prod, "label": {"name": HOLD_LABEL}}
    )
    staging_sha = staging["merge_commit_sha"]
    world.gh.set_status(staging_sha, "flux/staging", "success", description="applied")
    await world.dispatch("status", {"sha": staging_sha, "state": "success", "context": "flux/staging"})
    world.gh.permissions["lead"] = "maintain"
    world.gh.reviews[prod["number"]] = [{"user": {"login": "lead"}, "state": "APPROVED"}]
    await world.dispatch("pull_request_review", {"action": "submitted", "pull_request": prod, "review": {}})
    summary = max(
        (r for r in world.gh.check_runs.values() if r["head_sha"] == prod["head"]["sha"]),
        key=lambda r: r["id"],
    )["output"]["summary"]
    assert "held with `gitops-bot/hold`" in summary and "@lead" in summary

    # released: every gate holds, prod waits for a person, who merges
    prod["labels"] = []
    await world.dispatch(
        "pull_request", {"action": "unlabeled", "pull_request": prod, "label": {"name": HOLD_LABEL}}
    )
    assert not prod["merged"]
    run = max(
        (r for r in world.gh.check_runs.values() if r["head_sha"] == prod["head"]["sha"]),
        key=lambda r: r["id"],
    )
    assert run["conclusion"] == "success"
    world.gh.merge_pr(prod["number"])
    await world.closed(prod["number"])
    assert world.repo.read("refs/heads/env/prod", "clusters/team-a.yaml") == cluster
    history = read_marker(prod["body"])
    assert history is not None and [h.env for h in history.hops] == ["dev", "staging"]
    assert len([p for p in world.gh.pulls.values() if p["head"]["ref"].startswith("gitops-bot/")]) == 2

    # a later reconciler pass changes nothing
    writes = len(world.gh.writes())
    await reconcile_promotions(world.gh, world.ctx, repo="org/fleet")
    assert len(world.gh.writes()) == writes
