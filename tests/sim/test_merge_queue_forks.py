"""The simulator's merge queue and fork pull requests, as GitHub documents them.

Every webhook the receiver gets is checked against the octokit/webhooks schemas when the test
ends (``merge_group`` included), so the payload shapes are GitHub's.
"""

from __future__ import annotations

import re

import pytest

from bot.sim import Driver, Simulator
from bot.sim.core import ApiError
from bot.sim.gitops import resolve
from tests.sim.conftest import Api, Receiver

REPO = "acme/fleet"


async def _report(api: Api, sim: Simulator, sha: str, name: str, conclusion: str) -> None:
    token = sim.installation_token(next(iter(sim.world.installations))).value
    body = {"name": name, "head_sha": sha, "status": "completed", "conclusion": conclusion}
    await api.call(token, "POST", f"/repos/{REPO}/check-runs", body, expect=201)
    await sim.wait_for_webhooks()


async def _queued_pr(world: Driver, api: Api, sim: Simulator, branch: str, path: str) -> tuple[int, str]:
    head = await world.push("alice", REPO, branch, {path: f"{branch}: 1\n"}, base="main")
    number = await world.open_pr("alice", REPO, branch, base="main")
    await _report(api, sim, head, "ci", "success")
    await world.enqueue("bob", REPO, number)
    return number, head


async def test_a_queued_pr_gets_a_merge_group_and_merges_when_its_checks_pass(
    world: Driver, sim: Simulator, api: Api, receiver: Receiver
) -> None:
    sim.enable_merge_queue(REPO, "main", ["ci"])
    head = await world.push("alice", REPO, "one", {"one.yaml": "a: 1\n"}, base="main")
    number = await world.open_pr("alice", REPO, "one", base="main")
    with pytest.raises(ApiError) as refused:  # its required check has not passed yet
        await world.enqueue("bob", REPO, number)
    assert refused.value.status == 405
    await _report(api, sim, head, "ci", "success")
    with pytest.raises(ApiError):  # only people with write permission may queue
        await world.enqueue("carol", REPO, number)
    tip = resolve(sim.world.repos[REPO].path, "refs/heads/main")
    await world.enqueue("bob", REPO, number)

    (requested,) = receiver.of("merge_group", "checks_requested")
    group = requested["merge_group"]
    assert group["base_ref"] == "refs/heads/main" and group["base_sha"] == tip
    assert re.fullmatch(rf"refs/heads/gh-readonly-queue/main/pr-{number}-{tip}", group["head_ref"])
    assert resolve(sim.world.repos[REPO].path, group["head_ref"]) == group["head_sha"]
    assert receiver.of("pull_request", "enqueued")
    assert any(p["ref"] == group["head_ref"] for p in receiver.of("push"))  # GitHub pushes the branch too
    assert not sim.pull(REPO, number).merged

    await _report(api, sim, group["head_sha"], "ci", "success")
    pr = sim.pull(REPO, number)
    assert pr.merged and pr.merge_commit_sha == group["head_sha"]
    assert resolve(sim.world.repos[REPO].path, "refs/heads/main") == group["head_sha"]
    assert resolve(sim.world.repos[REPO].path, group["head_ref"]) is None
    assert [p["reason"] for p in receiver.of("merge_group", "destroyed")] == ["merged"]


async def test_a_failing_group_leaves_the_queue_and_the_groups_behind_are_rebuilt(
    world: Driver, sim: Simulator, api: Api, receiver: Receiver
) -> None:
    sim.enable_merge_queue(REPO, "main", ["ci"])
    first, _ = await _queued_pr(world, api, sim, "first", "first.yaml")
    second, _ = await _queued_pr(world, api, sim, "second", "second.yaml")
    groups = [p["merge_group"] for p in receiver.of("merge_group", "checks_requested")]
    assert len(groups) == 2 and groups[1]["base_sha"] == groups[0]["head_sha"]  # second is built on first

    await _report(api, sim, groups[0]["head_sha"], "ci", "failure")
    assert not sim.pull(REPO, first).merged and sim.pull(REPO, first).state == "open"
    assert [p["reason"] for p in receiver.of("pull_request", "dequeued")] == ["CI_FAILURE"]
    rebuilt = receiver.of("merge_group", "checks_requested")[-1]["merge_group"]
    assert rebuilt["head_ref"].startswith(f"refs/heads/gh-readonly-queue/main/pr-{second}-")
    assert rebuilt["base_sha"] == resolve(sim.world.repos[REPO].path, "refs/heads/main")
    reasons = sorted(p["reason"] for p in receiver.of("merge_group", "destroyed"))
    assert reasons == ["dequeued", "invalidated"]

    await _report(api, sim, rebuilt["head_sha"], "ci", "success")
    assert sim.pull(REPO, second).merged and [e.number for e in sim.queue_entries(REPO, "main")] == []


async def test_a_fork_pr_has_a_fork_head_and_its_pushes_reach_the_parent(
    world: Driver, sim: Simulator, api: Api, receiver: Receiver
) -> None:
    world.user("eve")
    sim.set_permission(REPO, "eve", "read")
    fork = world.fork("eve", REPO)
    assert fork == "eve/fleet" and sim.world.permission(sim.world.repos[REPO], "eve") == "read"
    head = await world.push("eve", fork, "idea", {"idea.yaml": "a: 1\n"})
    number = await world.open_pr("eve", REPO, "eve:idea", base="main")
    token = sim.installation_token(next(iter(sim.world.installations))).value
    _, pr, _ = await api.call(token, "GET", f"/repos/{REPO}/pulls/{number}", expect=200)
    assert pr["head"]["repo"]["full_name"] == fork and pr["head"]["repo"]["fork"] is True
    assert pr["base"]["repo"]["full_name"] == REPO and pr["base"]["repo"]["fork"] is False
    assert pr["head"]["label"] == "eve:idea" and pr["head"]["sha"] == head
    assert resolve(sim.world.repos[REPO].path, f"refs/pull/{number}/head") == head
    assert resolve(sim.world.repos[REPO].path, "refs/heads/idea") is None  # the branch stays in the fork
    (opened,) = receiver.of("pull_request", "opened")
    assert opened["pull_request"]["head"]["repo"]["fork"] is True

    newer = await world.push("eve", fork, "idea", {"idea.yaml": "a: 2\n"})
    (sync,) = receiver.of("pull_request", "synchronize")
    assert sync["repository"]["full_name"] == REPO and sync["after"] == newer
    assert resolve(sim.world.repos[REPO].path, f"refs/pull/{number}/head") == newer
    # the App is not installed on eve's account: it hears nothing of the fork's own branches
    assert all(p["repository"]["full_name"] == REPO for p in receiver.of("push"))
    # eve may not push to the parent
    with pytest.raises(Exception, match=r"403|denied|not allowed"):
        await world.push("eve", REPO, "idea", {"x.yaml": "b: 1\n"})
