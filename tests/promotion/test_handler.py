"""The promotion handler against a stateful fake GitHub and real git repositories."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.domain.labels import HOLD_LABEL, PROMOTION_LABEL, ROLLBACK_LABEL
from bot.domain.promotion.plan import read_marker
from handlers.promotion import (
    CHECK_NAME,
    evaluate_promotion,
    promote_pr,
    reconcile_promotions,
    rollback_pr,
)
from tests.promotion.conftest import CLUSTER, World, ago, make_world
from tests.promotion.kubeapi import FakeKubeAPI

KUBE_BOTH_KINDS = """\
version: 1
environments:
  - name: dev
    branch: env/dev
    auto_merge: true
    gates:
      health:
        kubernetes: {context: dev-admin, kustomizations: [apps], applications: [fleet-dev]}
  - name: staging
    branch: env/staging
    auto_merge: true
"""

KUBE_FLUX_ONLY = """\
version: 1
environments:
  - {name: dev, branch: env/dev, gates: {health: {kubernetes: {context: dev, kustomizations: [apps]}}}}
  - {name: staging, branch: env/staging, auto_merge: true}
"""


@asynccontextmanager
async def kube_world(tmp_path: Path, config: str, context: str) -> AsyncIterator[tuple[World, FakeKubeAPI]]:
    """A world whose config reads health from a test Kubernetes API server, via a kubeconfig."""

    @dataclass
    class Settings:
        kubeconfig: str

    world = make_world(tmp_path)
    world.repo.commit_on("main", {".github/gitops-bot.yml": config}, "kube health")
    api = FakeKubeAPI()
    await api.start()
    try:
        world.ctx.settings = Settings(str(api.kubeconfig(tmp_path / "kubeconfig", context)))
        yield world, api
    finally:
        await api.stop()


def _run(world: World, pr: dict) -> dict:
    """The latest gitops-bot/promotion check run on ``pr``'s head."""
    return max(
        (r for r in world.gh.check_runs.values() if r["head_sha"] == pr["head"]["sha"]), key=lambda r: r["id"]
    )


def _promotion(world: World, env: str) -> dict:
    prs = [p for p in world.gh.pulls.values() if p["head"]["ref"].startswith(f"gitops-bot/promote/{env}/")]
    assert len(prs) == 1, [p["head"]["ref"] for p in prs]
    return prs[0]


async def test_merge_into_dev_opens_one_promotion_pr_to_staging(world: World) -> None:
    n = world.change(
        "feature/b", "env/dev", {"clusters/b.yaml": CLUSTER.format(name="b", size=2)}, "Add cluster b"
    )
    await world.closed(n)
    promo = _promotion(world, "staging")
    merge_sha = world.gh.pulls[n]["merge_commit_sha"]
    assert promo["head"]["ref"] == f"gitops-bot/promote/staging/{merge_sha[:7]}"
    assert promo["base"]["ref"] == "env/staging"
    assert promo["title"] == f"Promote #{n} to staging: Add cluster b"
    assert f"https://github.com/org/fleet/pull/{n}" in promo["body"]
    assert "clusters/b.yaml" in promo["body"] and "```diff" in promo["body"]
    assert "- [ ] **health**" in promo["body"]
    assert {lbl["name"] for lbl in promo["labels"]} == {PROMOTION_LABEL}
    history = read_marker(promo["body"])
    assert history is not None and history.origin_pr == n and history.source_sha == merge_sha
    # the branch holds exactly the change on top of staging
    head = promo["head"]["sha"]
    assert world.repo.read(head, "clusters/b.yaml") == CLUSTER.format(name="b", size=2)
    assert world.repo.git("rev-parse", f"{head}^") == world.repo.sha("refs/heads/env/staging")
    (run,) = world.gh.check_runs.values()
    assert run["name"] == CHECK_NAME and run["head_sha"] == head and run["status"] == "in_progress"
    assert "| ⏳ | **health** |" in run["output"]["summary"]

    writes_before = len(world.gh.writes())
    pushes_before = len(world.access.pushes)
    await world.closed(n)  # the same delivery again
    await promote_pr(world.gh, world.ctx, repo="org/fleet", source_pr=n)
    assert len([p for p in world.gh.pulls.values() if p["head"]["ref"].startswith("gitops-bot/")]) == 1
    assert len(world.access.pushes) == pushes_before
    assert len(world.gh.writes()) == writes_before, [c.path for c in world.gh.writes()[writes_before:]]


async def test_gates_pass_merge_and_carry_on_to_prod(world: World) -> None:
    n = world.change(
        "feature/c", "env/dev", {"clusters/c.yaml": CLUSTER.format(name="c", size=3)}, "Add c", merged_ago=60
    )
    dev_sha = world.gh.pulls[n]["merge_commit_sha"]
    await world.closed(n)
    promo = _promotion(world, "staging")
    assert promo["state"] == "open"
    world.gh.set_status(
        dev_sha, "flux/dev", "success", updated_at=ago(minutes=45), description="Applied revision"
    )
    await world.dispatch("status", {"sha": dev_sha, "state": "success", "context": "flux/dev"})
    assert promo["merged"], "all gates hold and staging merges itself"
    assert world.repo.read("refs/heads/env/staging", "clusters/c.yaml") == CLUSTER.format(name="c", size=3)
    run = _run(world, promo)
    assert run["status"] == "completed" and run["conclusion"] == "success"
    assert "- [x] **soak**" in promo["body"]

    await world.closed(promo["number"])  # the merge webhook starts the next hop
    prod = _promotion(world, "prod")
    assert prod["title"] == f"Promote #{n} to prod: Add c"
    history = read_marker(prod["body"])
    assert history is not None and [h.env for h in history.hops] == ["dev", "staging"]
    assert history.source_pr == promo["number"]
    assert world.repo.read(prod["head"]["sha"], "clusters/c.yaml") == CLUSTER.format(name="c", size=3)
    out = await evaluate_promotion(world.gh, world.ctx, repo="org/fleet", promotion_pr=prod["number"])
    assert out.ok and "health" in out.message  # staging has no status yet


async def test_prod_approvals_by_people_with_write_and_no_auto_merge(world: World) -> None:
    n = world.change("feature/d", "env/dev", {"clusters/d.yaml": "d\n"}, "Add d", merged_ago=60)
    await world.closed(n)
    staging = _promotion(world, "staging")
    world.gh.merge_pr(staging["number"])
    staging["merged_at"] = ago(minutes=30)
    await world.closed(staging["number"])
    prod = _promotion(world, "prod")
    world.gh.set_status(staging["merge_commit_sha"], "flux/staging", "success", updated_at=ago(minutes=20))
    world.gh.reviews[prod["number"]] = [{"user": {"login": "intern"}, "state": "APPROVED"}]
    world.gh.permissions.update(intern="read", lead="admin")
    out = await evaluate_promotion(world.gh, world.ctx, repo="org/fleet", promotion_pr=prod["number"])
    assert not prod["merged"] and "approvals" in out.message
    world.gh.reviews[prod["number"]].append({"user": {"login": "lead"}, "state": "APPROVED"})
    out = await evaluate_promotion(world.gh, world.ctx, repo="org/fleet", promotion_pr=prod["number"])
    assert out.ok and not prod["merged"] and "waits for a person" in out.message
    run = _run(world, prod)
    assert run["conclusion"] == "success" and "@lead" in run["output"]["summary"]


async def test_hold_blocks_merge_until_unlabeled(world: World) -> None:
    n = world.change("feature/g", "env/dev", {"clusters/g.yaml": "g\n"}, "Add g", merged_ago=60)
    sha = world.gh.pulls[n]["merge_commit_sha"]
    await world.closed(n)
    promo = _promotion(world, "staging")
    promo["labels"].append({"name": HOLD_LABEL})
    await world.dispatch(
        "pull_request", {"action": "labeled", "pull_request": promo, "label": {"name": HOLD_LABEL}}
    )
    world.gh.set_status(sha, "flux/dev", "success", updated_at=ago(minutes=50))
    await world.dispatch("status", {"sha": sha, "state": "success", "context": "flux/dev"})
    assert not promo["merged"]
    run = _run(world, promo)
    assert "held with `gitops-bot/hold`" in run["output"]["summary"] and run["status"] == "in_progress"
    world.gh.permissions["lead"] = "write"
    promo["labels"] = []
    await world.dispatch(
        "pull_request",
        {
            "action": "unlabeled",
            "pull_request": promo,
            "label": {"name": HOLD_LABEL},
            "sender": {"login": "lead"},
        },
    )
    assert promo["merged"]


async def test_a_hold_label_removed_without_write_permission_is_put_back(world: World) -> None:
    n = world.change("feature/g", "env/dev", {"clusters/g.yaml": "g\n"}, "Add g", merged_ago=60)
    sha = world.gh.pulls[n]["merge_commit_sha"]
    await world.closed(n)
    promo = _promotion(world, "staging")
    promo["labels"].append({"name": HOLD_LABEL})
    labeled = {
        "action": "labeled",
        "pull_request": promo,
        "label": {"name": HOLD_LABEL},
        "sender": {"login": "tia"},
    }
    await world.dispatch("pull_request", labeled)
    world.gh.set_status(sha, "flux/dev", "success", updated_at=ago(minutes=50))
    world.gh.permissions["tia"] = "triage"
    promo["labels"] = []
    unlabeled = {**labeled, "action": "unlabeled"}
    await world.dispatch("pull_request", unlabeled)
    assert not promo["merged"]
    assert promo["labels"] == [{"name": HOLD_LABEL}]
    (reply,) = [c["body"] for c in world.gh.comments.values() if c["issue"] == promo["number"]]
    assert "@tia" in reply and "put back" in reply and "triage" in reply
    assert "held with `gitops-bot/hold`" in _run(world, promo)["output"]["summary"]


async def test_red_health_fails_the_check_and_does_not_merge(world: World) -> None:
    n = world.change("feature/h", "env/dev", {"clusters/h.yaml": "h\n"}, "Add h", merged_ago=60)
    sha = world.gh.pulls[n]["merge_commit_sha"]
    await world.closed(n)
    world.gh.set_status(sha, "flux/dev", "failure", description="Kustomization apps: dry-run failed")
    await world.dispatch("status", {"sha": sha, "state": "failure", "context": "flux/dev"})
    promo = _promotion(world, "staging")
    assert not promo["merged"]
    run = _run(world, promo)
    assert run["conclusion"] == "failure" and "dry-run failed" in run["output"]["summary"]


async def test_conflict_comments_once_then_promote_retries(world: World) -> None:
    world.repo.commit_on(
        "env/staging", {"clusters/a.yaml": CLUSTER.format(name="a", size=9)}, "hotfix in staging"
    )
    n = world.change(
        "feature/i", "env/dev", {"clusters/a.yaml": CLUSTER.format(name="a", size=2)}, "Resize a"
    )
    await world.closed(n)
    await world.closed(n)
    assert not [p for p in world.gh.pulls.values() if p["head"]["ref"].startswith("gitops-bot/")]
    (comment,) = [c for c in world.gh.comments.values() if c["issue"] == n]
    assert "`clusters/a.yaml`" in comment["body"] and "/promote staging" in comment["body"]
    assert len(world.gh.writes_to(r"/issues/\d+/comments$")) == 1
    out = await promote_pr(world.gh, world.ctx, repo="org/fleet", source_pr=n, target_env="staging")
    assert not out.ok and "clusters/a.yaml" in out.message
    # someone fixes staging so the change applies; /promote staging retries
    world.repo.commit_on("env/staging", {"clusters/a.yaml": CLUSTER.format(name="a", size=1)}, "undo hotfix")
    out = await promote_pr(world.gh, world.ctx, repo="org/fleet", source_pr=n, target_env="staging")
    assert out.ok and out.url is not None
    promo = _promotion(world, "staging")
    assert world.repo.read(promo["head"]["sha"], "clusters/a.yaml") == CLUSTER.format(name="a", size=2)
    (comment,) = [c for c in world.gh.comments.values() if c["issue"] == n]
    assert "resolved" in comment["body"] and out.url in comment["body"]


async def test_promote_refuses_wrong_targets_politely(world: World) -> None:
    n = world.change("feature/j", "env/dev", {"clusters/j.yaml": "j\n"}, "Add j")
    out = await promote_pr(world.gh, world.ctx, repo="org/fleet", source_pr=n, target_env="prod")
    assert not out.ok and "goes to `staging` next" in out.message
    out = await promote_pr(world.gh, world.ctx, repo="org/fleet", source_pr=n, target_env="qa")
    assert not out.ok and "no environment `qa`" in out.message
    world.repo.git("update-ref", "refs/heads/feature/k", world.repo.sha("refs/heads/env/dev"))
    open_pr = world.gh.open_pr("feature/k", "env/dev", "not merged")
    out = await promote_pr(world.gh, world.ctx, repo="org/fleet", source_pr=open_pr["number"])
    assert not out.ok and "not merged yet" in out.message


async def test_queue_one_in_flight_per_environment(world: World) -> None:
    n1 = world.change("feature/q1", "env/dev", {"clusters/q1.yaml": "1\n"}, "Q1", merged_ago=20)
    n2 = world.change("feature/q2", "env/dev", {"clusters/q2.yaml": "2\n"}, "Q2", merged_ago=10)
    await world.closed(n2)  # webhooks may arrive out of order
    await world.closed(n1)
    p1 = next(
        p
        for p in world.gh.pulls.values()
        if read_marker(p["body"]) and read_marker(p["body"]).source_pr == n1
    )
    p2 = next(
        p
        for p in world.gh.pulls.values()
        if read_marker(p["body"]) and read_marker(p["body"]).source_pr == n2
    )
    out2 = await evaluate_promotion(world.gh, world.ctx, repo="org/fleet", promotion_pr=p2["number"])
    assert "queue" in out2.message
    run2 = max(
        (r for r in world.gh.check_runs.values() if r["head_sha"] == p2["head"]["sha"]), key=lambda r: r["id"]
    )
    assert f"waiting for #{p1['number']}" in run2["output"]["summary"]
    out1 = await evaluate_promotion(world.gh, world.ctx, repo="org/fleet", promotion_pr=p1["number"])
    assert "queue" not in out1.message


async def test_rollback_opens_one_revert_pr(world: World) -> None:
    n = world.change("feature/r", "env/dev", {"clusters/a.yaml": CLUSTER.format(name="a", size=5)}, "Grow a")
    out = await rollback_pr(world.gh, world.ctx, repo="org/fleet", pr_number=n, reason="requested by @ops")
    again = await rollback_pr(world.gh, world.ctx, repo="org/fleet", pr_number=n, reason="requested by @ops")
    assert out.ok and again.ok and out.url == again.url
    (revert,) = [p for p in world.gh.pulls.values() if p["head"]["ref"].startswith("gitops-bot/rollback/")]
    assert revert["base"]["ref"] == "env/dev" and {lbl["name"] for lbl in revert["labels"]} == {
        ROLLBACK_LABEL
    }
    assert world.repo.read(revert["head"]["sha"], "clusters/a.yaml") == CLUSTER.format(name="a", size=1)
    assert "requested by @\u200bops" in revert["body"]  # shown, not a live mention
    # merging the rollback does not start a promotion of it
    world.gh.merge_pr(revert["number"])
    await world.closed(revert["number"])
    assert not [p for p in world.gh.pulls.values() if p["head"]["ref"].startswith("gitops-bot/promote/")]
    out = await rollback_pr(world.gh, world.ctx, repo="org/fleet", pr_number=n, reason="again")
    assert out.ok and "already rolled back" in out.message


async def test_rollback_of_unmerged_pr_is_refused(world: World) -> None:
    world.repo.git("update-ref", "refs/heads/feature/u", world.repo.sha("refs/heads/env/dev"))
    pr = world.gh.open_pr("feature/u", "env/dev", "open")
    out = await rollback_pr(world.gh, world.ctx, repo="org/fleet", pr_number=pr["number"], reason="x")
    assert not out.ok and "not merged" in out.message


async def test_rollback_on_red_after_promotion_merged(world: World) -> None:
    n = world.change("feature/s", "env/dev", {"clusters/s.yaml": "s\n"}, "Add s", merged_ago=60)
    sha = world.gh.pulls[n]["merge_commit_sha"]
    world.gh.set_status(sha, "flux/dev", "success", updated_at=ago(minutes=50))
    await world.closed(n)
    promo = _promotion(world, "staging")
    assert promo["merged"]
    staged = promo["merge_commit_sha"]
    world.gh.set_status(staged, "flux/staging", "failure", description="HelmRelease podinfo: upgrade failed")
    await world.dispatch("status", {"sha": staged, "state": "failure", "context": "flux/staging"})
    await world.dispatch("status", {"sha": staged, "state": "failure", "context": "flux/staging"})
    reverts = [
        p for p in world.gh.pulls.values() if p["head"]["ref"].startswith("gitops-bot/rollback/staging/")
    ]
    assert len(reverts) == 1 and reverts[0]["base"]["ref"] == "env/staging"
    assert world.repo.read(reverts[0]["head"]["sha"], "clusters/s.yaml") is None
    assert "turned red" in reverts[0]["body"] and "upgrade failed" in reverts[0]["body"]
    notes = [c for c in world.gh.comments.values() if c["issue"] == promo["number"]]
    assert len(notes) == 1 and "Automatic rollback" in notes[0]["body"]


async def test_reconciler_recovers_a_dropped_merge_event(world: World) -> None:
    n = world.change("feature/t", "env/dev", {"clusters/t.yaml": "t\n"}, "Add t")
    # no webhook: the delivery was lost
    outcomes = await reconcile_promotions(world.gh, world.ctx, repo="org/fleet")
    promo = _promotion(world, "staging")
    assert any(o.url == promo["html_url"] for o in outcomes)
    writes = len(world.gh.writes())
    await reconcile_promotions(world.gh, world.ctx, repo="org/fleet")
    assert len(world.gh.writes()) == writes
    assert read_marker(promo["body"]).source_pr == n  # type: ignore[union-attr]


async def test_merge_strategy_carries_the_whole_branch(tmp_path: Path) -> None:
    world = make_world(tmp_path, strategy="merge")
    world.repo.commit_on("env/dev", {"clusters/direct.yaml": "pushed straight to dev\n"}, "direct")
    n = world.change("feature/m", "env/dev", {"clusters/m.yaml": "m\n"}, "Add m")
    await world.closed(n)
    promo = _promotion(world, "staging")
    head = promo["head"]["sha"]
    assert world.repo.read(head, "clusters/m.yaml") == "m\n"
    assert world.repo.read(head, "clusters/direct.yaml") == "pushed straight to dev\n"
    parents = world.repo.git("show", "-s", "--format=%P", head).split()
    assert parents == [world.repo.sha("refs/heads/env/staging"), world.gh.pulls[n]["merge_commit_sha"]]
    assert "merges `dev`" in promo["body"]


async def test_the_renderer_comes_from_the_context(world: World) -> None:
    async def rendered(git_dir: Path, base: str, head: str, env: str) -> str:
        return f"rendered for {env}"

    world.ctx.diff_renderer = rendered
    n = world.change("feature/y", "env/dev", {"clusters/y.yaml": "y\n"}, "Add y")
    await world.closed(n)
    assert "rendered for staging" in _promotion(world, "staging")["body"]

    world.ctx.diff_renderer = None  # no renderer: the body points at the PR's checks, shows no file
    n2 = world.change("feature/z", "env/dev", {"clusters/z.yaml": "secret-ish\n"}, "Add z")
    await world.closed(n2)
    bodies = [
        p["body"] for p in world.gh.pulls.values() if "Add z" in p["title"] and p["user"]["login"] != "alice"
    ]
    assert "secret-ish" not in bodies[0] and "`/diff`" in bodies[0]


async def test_broken_config_is_reported_not_crashed(world: World) -> None:
    world.repo.commit_on(
        "main",
        {".github/gitops-bot.yml": "environments: [{name: dev, branch: a}, {name: dev, branch: b}]\n"},
        "bad",
    )
    n = world.change("feature/z", "env/dev", {"clusters/z.yaml": "z\n"}, "Add z")
    out = await promote_pr(world.gh, world.ctx, repo="org/fleet", source_pr=n)
    assert not out.ok and "not valid" in out.message and "listed twice" in out.message
    await world.closed(n)  # the webhook path logs it and does not raise


async def test_queue_advances_and_rebuilds_the_next_branch(world: World) -> None:
    n1 = world.change("feature/a1", "env/dev", {"clusters/a1.yaml": "1\n"}, "A1", merged_ago=60)
    n2 = world.change("feature/a2", "env/dev", {"clusters/a2.yaml": "2\n"}, "A2", merged_ago=50)
    await world.closed(n1)
    await world.closed(n2)
    by_source = {
        read_marker(p["body"]).source_pr: p for p in world.gh.pulls.values() if read_marker(p["body"])
    }  # type: ignore[union-attr]
    p1, p2 = by_source[n1], by_source[n2]
    p1["labels"].append({"name": HOLD_LABEL})  # keep the first one in flight
    sha2 = world.gh.pulls[n2]["merge_commit_sha"]
    world.gh.set_status(sha2, "flux/dev", "success", updated_at=ago(minutes=40))  # covers both commits
    await world.dispatch("status", {"sha": sha2, "state": "success", "context": "flux/dev"})
    assert not p1["merged"] and not p2["merged"], "the second waits for the first"
    assert f"waiting for #{p1['number']}" in _run(world, p2)["output"]["summary"]
    p1["labels"] = []
    await world.dispatch(
        "pull_request", {"action": "unlabeled", "pull_request": p1, "label": {"name": HOLD_LABEL}}
    )
    assert p1["merged"]
    assert p2["merged"], "next in line: rebuilt on the new staging tip and merged"
    assert world.repo.git("rev-parse", f"{p2['head']['sha']}^") == p1["merge_commit_sha"]
    await world.closed(p1["number"])  # the merge webhook arrives later and finds nothing to do
    assert world.repo.read("refs/heads/env/staging", "clusters/a1.yaml") == "1\n"
    assert world.repo.read("refs/heads/env/staging", "clusters/a2.yaml") == "2\n"


async def test_reconciler_ignores_merges_older_than_the_lookback(world: World) -> None:
    n = world.change("feature/old", "env/dev", {"clusters/old.yaml": "o\n"}, "Old")
    world.gh.pulls[n]["merged_at"] = ago(days=5)
    outcomes = await reconcile_promotions(world.gh, world.ctx, repo="org/fleet")
    assert outcomes == []
    assert not [p for p in world.gh.pulls.values() if p["head"]["ref"].startswith("gitops-bot/")]


async def test_kubernetes_health_gate_in_the_handler(tmp_path: Path) -> None:
    async with kube_world(tmp_path, KUBE_BOTH_KINDS, "dev-admin") as (world, api):
        n = world.change("feature/k", "env/dev", {"clusters/k.yaml": "k\n"}, "Add k")
        sha = world.gh.pulls[n]["merge_commit_sha"]
        await world.closed(n)
        promo = _promotion(world, "staging")
        assert not promo["merged"]
        run = _run(world, promo)
        assert "not found in context dev-admin" in run["output"]["summary"]
        ready = {"type": "Ready", "status": "True", "lastTransitionTime": ago(minutes=1)}
        api.put_kustomization(
            "apps",
            {"status": {"conditions": [ready], "lastAppliedRevision": f"env/dev@sha1:{sha}"}},
        )
        api.put_application(
            "argocd/fleet-dev",
            {"status": {"sync": {"status": "Synced", "revision": sha}, "health": {"status": "Healthy"}}},
        )
        out = await evaluate_promotion(world.gh, world.ctx, repo="org/fleet", promotion_pr=promo["number"])
        assert out.ok and promo["merged"], out.message


async def test_kubernetes_health_at_a_later_revision_counts(tmp_path: Path) -> None:
    async with kube_world(tmp_path, KUBE_FLUX_ONLY, "dev") as (world, api):
        n = world.change("feature/l1", "env/dev", {"clusters/l1.yaml": "1\n"}, "L1")
        await world.closed(n)
        promo = _promotion(world, "staging")
        # Flux already applied a later commit of env/dev, which includes ours
        later = world.repo.commit_on("env/dev", {"clusters/l2.yaml": "2\n"}, "L2 pushed to dev")
        ready = {"type": "Ready", "status": "True", "lastTransitionTime": ago(minutes=1)}
        status = {"conditions": [ready], "lastAppliedRevision": f"env/dev@sha1:{later}"}
        api.put_kustomization("apps", {"status": status})
        out = await evaluate_promotion(world.gh, world.ctx, repo="org/fleet", promotion_pr=promo["number"])
        assert promo["merged"], out.message
        # a change newer than what Flux applied keeps waiting
        n2 = world.change("feature/l3", "env/dev", {"clusters/l3.yaml": "3\n"}, "L3")
        await world.closed(n2)
        promo2 = next(p for p in world.gh.pulls.values() if p["title"].startswith(f"Promote #{n2} "))
        out = await evaluate_promotion(world.gh, world.ctx, repo="org/fleet", promotion_pr=promo2["number"])
        assert not promo2["merged"] and "waiting for" in out.message + str(world.gh.check_runs)


async def test_status_on_a_later_commit_of_the_branch_counts(world: World) -> None:
    n = world.change("feature/v1", "env/dev", {"clusters/v1.yaml": "1\n"}, "V1", merged_ago=60)
    await world.closed(n)
    promo = _promotion(world, "staging")
    later = world.repo.commit_on("env/dev", {"clusters/v2.yaml": "2\n"}, "V2 pushed to dev")
    world.gh.set_status(later, "flux/dev", "success", updated_at=ago(minutes=40), description="Applied")
    await world.dispatch("status", {"sha": later, "state": "success", "context": "other/ci"})
    assert not promo["merged"], "a context that is no health signal does not re-evaluate others"
    await world.dispatch("status", {"sha": later, "state": "success", "context": "flux/dev"})
    assert promo["merged"]
    run = _run(world, promo)
    assert f"at `{later[:7]}`, which includes it" in run["output"]["summary"]


async def test_unknown_pr_gets_a_clear_answer(world: World) -> None:
    out = await promote_pr(world.gh, world.ctx, repo="org/fleet", source_pr=999)
    assert not out.ok and "Not found while promoting #999" in out.message
    out = await rollback_pr(world.gh, world.ctx, repo="org/fleet", pr_number=999, reason="x")
    assert not out.ok and "Not found" in out.message
    out = await evaluate_promotion(world.gh, world.ctx, repo="org/fleet", promotion_pr=999)
    assert not out.ok and "Not found" in out.message
    world.repo.git("update-ref", "refs/heads/feature/np", world.repo.sha("refs/heads/env/dev"))
    plain = world.gh.open_pr("feature/np", "env/dev", "plain")
    out = await evaluate_promotion(world.gh, world.ctx, repo="org/fleet", promotion_pr=plain["number"])
    assert not out.ok and "not a promotion PR" in out.message


async def test_evaluating_twice_writes_nothing_new(world: World) -> None:
    n = world.change("feature/w", "env/dev", {"clusters/w.yaml": "w\n"}, "Add w")
    await world.closed(n)
    promo = _promotion(world, "staging")
    first = await evaluate_promotion(world.gh, world.ctx, repo="org/fleet", promotion_pr=promo["number"])
    writes = len(world.gh.writes())
    second = await evaluate_promotion(world.gh, world.ctx, repo="org/fleet", promotion_pr=promo["number"])
    await reconcile_promotions(world.gh, world.ctx, repo="org/fleet")
    assert first == second
    assert len(world.gh.writes()) == writes
    assert len([r for r in world.gh.check_runs.values() if r["head_sha"] == promo["head"]["sha"]]) == 1


def _merged_by_hand(world: World, branch: str, merge_sha: str, commits: list[tuple[str, str]]) -> int:
    """A PR merged by squash or rebase: base already moved to ``merge_sha``."""
    pr = world.gh.open_pr(branch, "env/dev", "Two steps")
    pr.update(state="closed", merged=True, merged_at=ago(minutes=1), merge_commit_sha=merge_sha)
    pr["commits"] = len(commits)
    world.gh.pr_commits[pr["number"]] = commits
    return int(pr["number"])


async def test_squash_merge_carries_only_the_squash_commit(world: World) -> None:
    world.repo.commit_on(
        "env/dev", {"clusters/unrelated.yaml": "not promoted yet\n"}, "unrelated earlier change"
    )
    world.repo.git("update-ref", "refs/heads/feature/sq", world.repo.sha("refs/heads/env/dev"))
    c1 = world.repo.commit_on("feature/sq", {"clusters/s1.yaml": "1\n"}, "step 1")
    c2 = world.repo.commit_on("feature/sq", {"clusters/s2.yaml": "2\n"}, "step 2")
    squash = world.repo.commit_on(
        "env/dev", {"clusters/s1.yaml": "1\n", "clusters/s2.yaml": "2\n"}, "Two steps (#9)"
    )
    n = _merged_by_hand(world, "feature/sq", squash, [(c1, "step 1"), (c2, "step 2")])
    await world.closed(n)
    head = _promotion(world, "staging")["head"]["sha"]
    assert world.repo.read(head, "clusters/s2.yaml") == "2\n"
    assert world.repo.read(head, "clusters/unrelated.yaml") is None


async def test_rebase_merge_carries_every_rebased_commit(world: World) -> None:
    world.repo.commit_on(
        "env/dev", {"clusters/unrelated.yaml": "not promoted yet\n"}, "unrelated earlier change"
    )
    r1 = world.repo.commit_on("env/dev", {"clusters/r1.yaml": "1\n"}, "step 1")
    r2 = world.repo.commit_on("env/dev", {"clusters/r2.yaml": "2\n"}, "step 2")
    world.repo.git("update-ref", "refs/heads/feature/rb", r2)
    n = _merged_by_hand(world, "feature/rb", r2, [("a" * 40, "step 1"), ("b" * 40, "step 2\n\nbody")])
    await world.closed(n)
    head = _promotion(world, "staging")["head"]["sha"]
    assert world.repo.read(head, "clusters/r1.yaml") == "1\n"
    assert world.repo.read(head, "clusters/r2.yaml") == "2\n"
    assert world.repo.read(head, "clusters/unrelated.yaml") is None
    assert r1 != r2
    out = await rollback_pr(world.gh, world.ctx, repo="org/fleet", pr_number=n, reason="undo both")
    (revert,) = [p for p in world.gh.pulls.values() if p["head"]["ref"].startswith("gitops-bot/rollback/")]
    assert out.ok
    assert world.repo.read(revert["head"]["sha"], "clusters/r1.yaml") is None
    assert world.repo.read(revert["head"]["sha"], "clusters/unrelated.yaml") == "not promoted yet\n"


async def test_a_held_source_pr_opens_its_promotion_held(world: World) -> None:
    n = world.change("feature/hh", "env/dev", {"clusters/hh.yaml": "h\n"}, "Add hh", merged_ago=60)
    world.gh.pulls[n]["labels"].append({"name": HOLD_LABEL})
    world.gh.set_status(
        world.gh.pulls[n]["merge_commit_sha"], "flux/dev", "success", updated_at=ago(minutes=40)
    )
    await world.closed(n)
    promo = _promotion(world, "staging")
    assert HOLD_LABEL in {lbl["name"] for lbl in promo["labels"]} and not promo["merged"]
    promo["labels"] = [lbl for lbl in promo["labels"] if lbl["name"] != HOLD_LABEL]
    await world.dispatch(
        "pull_request", {"action": "unlabeled", "pull_request": promo, "label": {"name": HOLD_LABEL}}
    )
    assert promo["merged"]
    assert HOLD_LABEL not in {lbl["name"] for lbl in promo["labels"]}


async def test_team_rule_counts_team_members_only(world: World) -> None:
    config = world.repo.read("refs/heads/main", ".github/gitops-bot.yml") or ""
    config = config.replace("require: {count: 1}", "require: {count: 1, teams: [org/sre]}")
    world.repo.commit_on("main", {".github/gitops-bot.yml": config}, "prod-owners is the SRE team")
    n = world.change("feature/tm", "env/dev", {"clusters/tm.yaml": "t\n"}, "Add tm", merged_ago=60)
    await world.closed(n)
    staging = _promotion(world, "staging")
    world.gh.merge_pr(staging["number"])
    await world.closed(staging["number"])
    prod = _promotion(world, "prod")
    world.gh.permissions.update(ann="write", bob="admin")
    world.gh.teams["org/sre"] = {"ann"}
    world.gh.reviews[prod["number"]] = [{"user": {"login": "bob"}, "state": "APPROVED"}]
    await evaluate_promotion(world.gh, world.ctx, repo="org/fleet", promotion_pr=prod["number"])
    assert (
        "`prod-owners`: 1 more from @org/sre"  # write permission is the default bar, not repeated
        in _run(world, prod)["output"]["summary"]
    )
    world.gh.reviews[prod["number"]].append({"user": {"login": "ann"}, "state": "APPROVED"})
    await evaluate_promotion(world.gh, world.ctx, repo="org/fleet", promotion_pr=prod["number"])
    assert "approved by @ann" in _run(world, prod)["output"]["summary"]
