"""Merge queues and fork pull requests, end to end: the real bot (``create_app``) on the simulator.

* A repository that requires gitops-bot's checks and a merge queue on ``main``: a queued PR gets
  every required check on its merge group's head commit and the queue merges it; two requests
  that each pass alone but clash together (one cluster name twice) — the second group fails
  ``gitops-bot/validate`` and the queue drops it, with a comment saying why.
* A fork PR: rendered and validated like any PR; the fork's own ``.github/gitops-bot.yml``
  (which would allow anything) changes nothing; its author, with only read permission on the
  base repository, cannot run commands, and can once given write permission.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain.promotion import plan
from bot.git.files import read_file_at
from bot.sim.demo import REPO, DemoWorld, cluster_request
from bot.sim.gitops import resolve

pytestmark = pytest.mark.slow

REQUIRED = ("gitops-bot", "gitops-bot/validate", "gitops-bot/signatures", "gitops-bot/approvals")


def _runs_on(world: DemoWorld, sha: str) -> dict[str, str]:
    latest: dict[str, tuple[int, str]] = {}
    for run in world.sim.world.runs.values():
        ours = run.repo == REPO and run.head_sha == sha and run.status == "completed"
        if ours and (run.name not in latest or run.id > latest[run.name][0]):
            latest[run.name] = (run.id, str(run.conclusion))
    return {name: conclusion for name, (_, conclusion) in latest.items()}


def _run_text(world: DemoWorld, sha: str, name: str) -> str:
    run = max(
        (r for r in world.sim.world.runs.values() if r.head_sha == sha and r.name == name), key=lambda r: r.id
    )
    output = "\n".join(str(run.output.get(k)) for k in ("title", "summary", "text"))
    return output + "\n" + "\n".join(str(a.get("message")) for a in run.annotations)


async def _approved_request(world: DemoWorld, branch: str, cluster: str, path: str) -> int:
    _, text = cluster_request(cluster)
    await world.driver.push("alice", REPO, branch, {path: text}, base="main", message=f"Add {cluster}")
    number = await world.driver.open_pr("alice", REPO, branch, base="main", title=f"Add {cluster}")
    await world.driver.approve("bob", REPO, number)
    await world.driver.approve("dave", REPO, number)
    ok = await world.until(
        lambda: all(world.checks(number).get(n) == "success" for n in REQUIRED), f"PR #{number}'s checks"
    )
    assert ok, world.checks(number)
    return number


def _group_heads(world: DemoWorld) -> list[tuple[str, str]]:
    """(head_ref, head_sha) of every merge group GitHub announced, in order."""
    import json

    out = []
    for d in world.sim.world.deliveries:
        if d.event == "merge_group" and d.action == "checks_requested" and not d.redelivery:
            group = json.loads(d.body)["merge_group"]
            out.append((group["head_ref"], group["head_sha"]))
    return out


async def test_a_queued_request_gets_its_checks_on_the_merge_group_and_merges(tmp_path: Path) -> None:
    async with DemoWorld(tmp_path, out=lambda _: None, reconcile_interval=60) as world:
        await world.setup_fleet()
        world.sim.enable_merge_queue(REPO, "main", REQUIRED)
        number = await _approved_request(
            world, "request/qa", "qa-dev-euw1", "clusters/dev/qa-dev-euw1/cluster.yaml"
        )

        await world.driver.enqueue("bob", REPO, number)
        merged = await world.until(lambda: world.pr(number).merged, "the queue to merge the request")

        ((head_ref, head_sha),) = _group_heads(world)
        assert head_ref.startswith(f"refs/heads/gh-readonly-queue/main/pr-{number}-")
        runs = _runs_on(world, head_sha)
        assert {n: runs.get(n) for n in REQUIRED} == dict.fromkeys(REQUIRED, "success"), runs
        assert runs.get("gitops-bot/diff") == "neutral"
        assert "qa-dev-euw1" in _run_text(world, head_sha, "gitops-bot/diff")  # the combined change, rendered
        assert f"#{number}" in _run_text(world, head_sha, "gitops-bot/approvals")  # carried over from the PR
        assert merged and world.pr(number).merge_commit_sha == head_sha
        assert resolve(world.sim.world.repos[REPO].path, "refs/heads/main") == head_sha


async def test_a_combined_change_that_fails_is_dropped_from_the_queue(tmp_path: Path) -> None:
    async with DemoWorld(tmp_path, out=lambda _: None, reconcile_interval=60) as world:
        await world.setup_fleet()
        world.sim.enable_merge_queue(REPO, "main", REQUIRED)
        # Each request passes alone; together they name the same cluster twice.
        first = await _approved_request(
            world, "request/one", "twin-dev-euw1", "clusters/dev/twin-dev-euw1/cluster.yaml"
        )
        second = await _approved_request(
            world, "request/two", "twin-dev-euw1", "clusters/dev/twin-b/cluster.yaml"
        )

        await world.driver.enqueue("bob", REPO, first)
        await world.driver.enqueue("bob", REPO, second)
        await world.until(
            lambda: world.pr(first).merged and not world.sim.queue_entries(REPO, "main"),
            "the queue to settle",
        )

        assert world.pr(first).merged
        assert not world.pr(second).merged and world.pr(second).state == "open"
        heads = dict(_group_heads(world))
        (second_group,) = [sha for ref, sha in heads.items() if f"/pr-{second}-" in ref]
        runs = _runs_on(world, second_group)
        assert runs["gitops-bot/validate"] == "failure" and runs["gitops-bot"] == "failure"
        assert "twin-dev-euw1" in _run_text(world, second_group, "gitops-bot/validate")
        replies = [body for author, body in world.driver.comments(REPO, second) if author.endswith("[bot]")]
        assert any("removed from the merge queue" in r and "gitops-bot/validate" in r for r in replies)
        assert (
            resolve(world.sim.world.repos[REPO].path, "refs/heads/main") == world.pr(first).merge_commit_sha
        )


async def test_a_fork_pr_is_checked_against_the_base_config_and_its_author_needs_base_permission(
    tmp_path: Path,
) -> None:
    async with DemoWorld(tmp_path, out=lambda _: None, reconcile_interval=60) as world:
        await world.setup_fleet()
        d = world.driver
        d.user("eve", email="eve@example.com")
        world.sim.set_permission(REPO, "eve", "read")
        # The platform team lets the bot approve and merge small dev requests of its own people.
        main = resolve(world.sim.world.repos[REPO].path, "refs/heads/main")
        text = read_file_at(world.sim.world.repos[REPO].path, str(main), ".github/gitops-bot.yml") or ""
        assert "self_service:\n  enabled: false" in text and "allowed_instance_types" in text
        text = text.replace(
            "self_service:\n  enabled: false", "self_service:\n  enabled: true\n  max_nodes: 10"
        )
        await d.push("bob", REPO, "main", {".github/gitops-bot.yml": text}, message="Self-service on")
        await world.settle()
        fork = d.fork("eve", REPO)
        # The fork's head allows any instance type and needs one approval instead of two.
        loose = text.replace('allowed_instance_types: ["m6i.*"', 'allowed_instance_types: ["*", "m6i.*"')
        loose = loose.replace("count: 2", "count: 1")
        path, request = cluster_request("eve-dev-euw1")
        request = request.replace("m7i.large", "c7i.8xlarge")
        await d.push(
            "eve",
            fork,
            "bigger",
            {path: request, ".github/gitops-bot.yml": loose},
            base="main",
            message="Add mine",
        )
        number = await d.open_pr("eve", REPO, "eve:bigger", base="main", title="Add eve's cluster")
        assert await world.until(
            lambda: "gitops-bot/validate" in world.checks(number), "the fork PR's checks"
        )
        await d.approve("bob", REPO, number)  # enough for the fork's config, not for the base's
        await world.settle()

        pr = world.pr(number)
        assert pr.head_repo == fork
        checks = world.checks(number)
        assert checks["gitops-bot/validate"] == "failure" and checks["gitops-bot"] == "failure"
        assert "instance type 'c7i.8xlarge' is not allowed" in _run_text(
            world, pr.head_sha, "gitops-bot/validate"
        )
        assert checks["gitops-bot/approvals"] == "failure", _run_text(
            world, pr.head_sha, "gitops-bot/approvals"
        )
        assert "eve-dev-euw1" in _run_text(world, pr.head_sha, "gitops-bot/diff")  # rendered
        replies = [body for author, body in d.comments(REPO, number) if author.endswith("[bot]")]
        assert any("## Rendered diff" in r for r in replies)

        # eve has read permission on the base repository: her commands are refused
        await d.comment("eve", REPO, number, "/hold mine now")
        await world.settle()
        replies = [body for author, body in d.comments(REPO, number) if author.endswith("[bot]")]
        assert any("Only people with write, maintain or admin permission" in r for r in replies)
        assert "gitops-bot/hold" not in world.pr(number).labels

        # a push to the fork reaches the PR: now a clean small dev request, but from a fork author
        # without write permission, so the bot neither approves nor merges it (self-service)
        fixed = request.replace("c7i.8xlarge", "m7i.large")
        await d.push(
            "eve",
            fork,
            "bigger",
            {path: fixed, ".github/gitops-bot.yml": text},
            message="Use an allowed size",
        )
        fixed_ok = await world.until(
            lambda: world.checks(number).get("gitops-bot/validate") == "success", "the fixed fork PR"
        )
        assert fixed_ok, _run_text(world, world.pr(number).head_sha, "gitops-bot/validate")
        await world.settle()
        assert not world.pr(number).merged
        assert not [r for r in world.pr(number).reviews if r.user.endswith("[bot]")]
        # a fork author with write on the base repository may command
        world.sim.set_permission(REPO, "eve", "write")
        await d.comment("eve", REPO, number, "/hold until Monday")
        assert await world.until(lambda: "gitops-bot/hold" in world.pr(number).labels, "eve's hold")


async def test_a_fork_pr_dressed_as_a_promotion_gets_no_promotion_standing(tmp_path: Path) -> None:
    async with DemoWorld(tmp_path, out=lambda _: None, reconcile_interval=60) as world:
        await world.setup_fleet()
        d = world.driver
        d.user("eve", email="eve@example.com")
        world.sim.set_permission(REPO, "eve", "read")
        fork = d.fork("eve", REPO)
        path, request = cluster_request("eve-dev-euw1")
        branch = "gitops-bot/promote/staging/0123456"
        await d.push("eve", fork, branch, {path: request}, base="env/staging", message="Promote")
        history = plan.History(
            origin_pr=1,
            origin_title="x",
            source_env="dev",
            target_env="staging",
            source_pr=1,
            source_sha="0" * 40,
            strategy="cherry-pick",
        )
        number = await d.open_pr(
            "eve",
            REPO,
            f"eve:{branch}",
            base="env/staging",
            title="Promote #1 to staging",
            body=plan.marker(history),
        )
        assert await world.until(
            lambda: "gitops-bot/approvals" in world.checks(number), "the approvals check"
        )
        await world.settle()
        assert world.checks(number)["gitops-bot/approvals"] == "failure"  # the path rules apply, not a gate
        assert not world.pr(number).merged
