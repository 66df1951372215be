"""Cluster upgrade campaigns end to end: the real bot (``create_app``, in process) on the simulator.

The calendar opens the issue, a person with the right role says ``/upgrade`` on it, and the bot
runs the campaign through step PRs on ``env/prod`` that people merge, gated by the health and
smoke statuses Flux and the smoke tests post, driven by the reconciler's passes and the step
PRs' ``closed`` webhooks. Assertions are on what GitHub holds: the files each PR leaves on
``env/prod``, the tracking issue's checklist and state, the PRs and comments (and that a
redelivered webhook adds none).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.git.files import git
from bot.sim.demo import DemoWorld
from bot.sim.state import PullRequest
from handlers import upgrades as upgrades_handler
from tests.e2e.upgrades_world import BOT, REPO, Upgrades, setup_fleet

pytestmark = pytest.mark.slow


async def _world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str, strategy: str, reconcile: float = 0.5
) -> AsyncIterator[Upgrades]:
    monkeypatch.setattr(upgrades_handler, "_LAST_CALENDAR", {})  # a fresh process: the calendar is due
    async with DemoWorld(tmp_path, out=lambda _: None, reconcile_interval=reconcile) as world:
        await setup_fleet(world.driver, version, strategy)
        w = Upgrades(world.driver, world.settle)
        if reconcile < 60:
            await w.until(lambda: len(w.issues()) == 1, "the calendar's issue")
        yield w


@pytest.fixture
async def blue_green(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Upgrades]:
    async for w in _world(tmp_path, monkeypatch, "1.33", "blue-green"):
        yield w


@pytest.fixture
async def in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Upgrades]:
    """In place, one PR per hop (the config says so: shop-a's add-on is ACK's, which alone would
    split each hop into a PR per part)."""
    async for w in _world(tmp_path, monkeypatch, "1.32", "in-place\n  in_place: {pull_requests: per-hop}"):
        yield w


@pytest.fixture
async def no_reconciler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Upgrades]:
    """The reconciler's passes an hour apart (its first found no repository): only webhooks move."""
    async for w in _world(tmp_path, monkeypatch, "1.33", "blue-green", reconcile=3600):
        yield w


async def _start(w: Upgrades, text: str = "/upgrade shop-a to 1.35 blue-green") -> int:
    """alice (write) is refused on prod; bob (maintain) starts the campaign in the calendar's issue."""
    issue = w.issue()
    assert issue.state == "open" and w.campaign() is None  # the calendar's issue: the plan only
    await w.d.comment("alice", REPO, issue.number, text)
    await w.until(lambda: any("*maintain*" in b for b in w.bot_comments(issue.number)), "the refusal")
    assert w.campaign() is None and not w.steps_prs()
    await w.d.comment("bob", REPO, issue.number, text)
    await w.until(lambda: w.open_step() is not None, "step 1's PR")
    assert [i.number for i in w.issues()] == [issue.number]
    return issue.number


async def test_whole_blue_green_campaign(blue_green: Upgrades) -> None:
    w = blue_green
    number = await _start(w)
    first = w.open_step()
    assert first is not None and first.user == BOT and first.base_ref == "env/prod"
    assert f"#{number}" in (first.body or "")

    async def dangerous_needs_its_approval(pr: PullRequest) -> None:
        if not _removes_blue(w):
            return
        await w.until(lambda: "gitops-bot/approvals" in w.checks(pr.number), "the approvals check")
        await w.until(
            lambda: w.checks(pr.number)["gitops-bot/approvals"]["status"] == "completed", "approvals"
        )
        run = w.checks(pr.number)["gitops-bot/approvals"]
        assert run["conclusion"] == "failure" and "sre-lead" in run["summary"], run
        await w.d.approve("sre-lead", REPO, pr.number)
        await w.until(
            lambda: w.checks(pr.number)["gitops-bot/approvals"]["conclusion"] == "success",
            "the dangerous rule satisfied by sre-lead",
        )

    merged = await w.drive(lambda c: c.phase == "done", on_pr=dangerous_needs_its_approval)
    titles = [p.title.split(": ", 1)[1] for p in merged]
    assert titles == [
        "Create shop-b at 1.35 beside shop-a, with traffic weight 0",
        "Shift traffic: shop-b 10%, shop-a 90%",
        "Shift traffic: shop-b 50%, shop-a 50%",
        "Shift traffic: shop-b 100%, shop-a 0%",
        "Decommission shop-a: remove its workloads and traffic entries",
        "Remove shop-a's cluster request",
    ], titles
    # one PR per step, every one the bot's, merged; checked like any PR
    assert [p.number for p in w.steps_prs()] == [p.number for p in merged]
    assert all(p.user == BOT and p.merged for p in merged)
    validate = {p.number: w.checks(p.number)["gitops-bot/validate"] for p in merged}
    assert all(r["conclusion"] == "success" for r in validate.values()), [
        (n, [(a.get("path"), a.get("message")) for a in r["annotations"]])
        for n, r in validate.items()
        if r["conclusion"] != "success"
    ]
    # the bot's step commits pass the signature policy on clusters/prod as its own
    signatures = {p.number: w.checks(p.number)["gitops-bot/signatures"] for p in merged}
    assert all(
        r["conclusion"] == "success" and "made by gitops-bot" in r["summary"] for r in signatures.values()
    ), signatures
    # what the campaign left on env/prod
    assert w.file("clusters/prod/shop-a/cluster.yaml") is None
    green = w.file("clusters/prod/shop-b/cluster.yaml") or ""
    assert 'version: "1.35"  # bumped by upgrades' in green and "name: shop-b" in green
    assert "addonVersion: v1.35.3-eksbuild.2" in green
    assert w.weights() == {"shop-b": 100}
    config = w.file(".github/gitops-bot.yml") or ""
    assert "name: shop-b" in config and "name: shop-a" not in config
    # main's registry still named shop-a: the bot proposes the swap there, reviewed like any PR
    [registry] = w.registry_prs()
    assert (
        registry.user == BOT
        and registry.state == "open"
        and "names shop-b instead of shop-a" in registry.title
    )
    assert any(f"#{registry.number}" in b or f"/pull/{registry.number}" in b for b in w.bot_comments(number))
    await w.d.merge("bob", REPO, registry.number)
    main = w.file(".github/gitops-bot.yml", "main") or ""
    assert "name: shop-b" in main and "name: shop-a" not in main
    # the tracking issue: every box ticked, closed as done
    issue = w.issue()
    assert issue.state == "closed" and issue.number == number
    boxes = [line for line in (issue.body or "").splitlines() if line.startswith("- [")]
    assert len(boxes) == 7 and all(line.startswith("- [x]") for line in boxes), boxes


async def test_redelivered_webhooks_do_nothing_twice(blue_green: Upgrades) -> None:
    w = blue_green
    number = await _start(w)
    first = w.open_step()
    assert first is not None
    await w.merge_step(first)
    await w.until(lambda: (w.campaign() or first).phase != "merging", "step 1 merged")  # type: ignore[union-attr]
    await w.settle()

    def seen() -> tuple[object, ...]:
        comments = [b for who, b in w.d.comments(REPO, number)]
        return (len(w.steps_prs()), len(w.issues()), len(comments), w.issue().body)

    before = seen()
    for d in [d for d in w.sim.world.deliveries if not d.redelivery]:
        if (d.event, d.action) in {
            ("pull_request", "closed"),
            ("issue_comment", "created"),
            ("issues", "opened"),
        }:
            w.sim.deliverer.redeliver(d)
    await w.settle()
    assert seen() == before
    # a second /upgrade of the same cluster gets a link to the first, nothing more
    await w.d.comment("bob", REPO, number, "/upgrade shop-a to 1.35 blue-green")
    await w.until(lambda: any("already has an upgrade" in b for b in w.bot_comments(number)), "the link")
    assert len(w.steps_prs()) == before[0] and len(w.issues()) == 1


async def test_red_smoke_and_red_traffic_step_roll_back_then_resume(blue_green: Upgrades) -> None:
    w = blue_green
    number = await _start(w)
    await w.drive(lambda c: c.phase == "smoke", smoke=None)
    # the smoke tests fail on green: paused, no traffic moved
    await w.report(smoke="failure")
    await w.until(lambda: (c := w.campaign()) is not None and c.phase == "paused", "the pause")
    assert w.weights() == {"shop-a": 100, "shop-b": 0} and len(w.steps_prs()) == 1
    assert any("smoke signal failed" in b for b in w.bot_comments(number))
    # the team fixes green and says /upgrade on the tracking issue: the failure still on the commit
    # is the one the step paused on, so the retry waits for the smoke tests' next verdict
    await w.d.comment("bob", REPO, number, "/upgrade shop-a")
    await w.until(lambda: any("new smoke signal" in b for b in w.bot_comments(number)), "the resume")
    await w.settle()
    await w.settle()
    waiting = w.campaign()
    assert waiting is not None and waiting.phase == "smoke", waiting
    await w.report(smoke="success")  # the smoke tests run again
    await w.until(lambda: (c := w.campaign()) is not None and c.phase == "merging", "the next step")
    await w.drive(lambda c: c.step is not None and c.step.weight == 50 and c.phase == "soaking")
    assert w.weights() == {"shop-a": 50, "shop-b": 50}
    # green turns red during the 50% step: a rollback PR to the last good weights, merged by the bot
    await w.report(red=("shop-b",))
    await w.until(lambda: (c := w.campaign()) is not None and c.phase == "paused", "the rollback")
    c = w.campaign()
    assert c is not None and "shop-b turned red" in c.reason
    rollbacks = [p for p in w.steps_prs() if p.head_ref.endswith("-rollback")]
    assert len(rollbacks) == 1 and rollbacks[0].merged and rollbacks[0].merged_by == BOT
    assert w.weights() == {"shop-a": 90, "shop-b": 10}
    assert "(#" in (w.issue().body or "") and "- [ ] Shift traffic: shop-b 50%" in (w.issue().body or "")
    # nothing moves while paused, however many passes
    count = len(w.steps_prs())
    await w.report()
    await w.settle()
    await w.settle()
    assert len(w.steps_prs()) == count and (w.campaign() or c).phase == "paused"
    # /upgrade retries the 50% step; the campaign finishes
    await w.d.comment("bob", REPO, number, "/upgrade shop-a")
    await w.until(lambda: (c := w.campaign()) is not None and c.phase == "merging", "the retry")
    await w.drive(lambda c: c.phase == "done", on_pr=_approve_dangerous(w))
    assert w.weights() == {"shop-b": 100} and w.issue().state == "closed"
    fifty = [p for p in w.steps_prs() if "50%" in p.title]
    assert len(fifty) == 2 and fifty[0].merged and fifty[1].merged  # the step, and its retry


def _removes_blue(w: Upgrades) -> bool:
    c = w.campaign()
    return c is not None and c.step is not None and c.step.kind == "decommission-cluster"


def _approve_dangerous(w: Upgrades) -> Callable[[PullRequest], Awaitable[None]]:
    async def approve(pr: PullRequest) -> None:
        if _removes_blue(w):
            await w.d.approve("sre-lead", REPO, pr.number)

    return approve


async def test_three_hop_in_place_upgrade(in_place: Upgrades) -> None:
    w = in_place
    number = await _start(w, "/upgrade shop-a to 1.35")
    hops: list[PullRequest] = []  # every step PR, in order
    while True:
        c = w.campaign()
        assert c is not None
        if c.phase == "done":
            break
        pr = w.open_step()
        assert pr is not None, c
        hops.append(pr)
        await w.merge_step(pr)
        await w.until(lambda: (x := w.campaign()) is not None and x.phase == "soaking", "the soak")
        # the next hop waits for the cluster's health at the merge
        await w.settle()
        await w.settle()
        assert w.open_step() is None and len(w.steps_prs()) == len(hops)
        await w.report()
        await w.until(lambda: (x := w.campaign()) is not None and x.phase in ("merging", "done"), "next hop")
    # three hops, one PR each, its commits in EKS's order: the control plane, then the add-ons for it
    titles = [p.title.split(": ", 1)[1] for p in hops]
    assert titles == [f"Hop to {v} (control plane, then add-ons)" for v in ("1.33", "1.34", "1.35")], titles
    git_dir = w.sim.world.repos[REPO].path
    for pr, v in zip(hops, ("1.33", "1.34", "1.35"), strict=True):
        log = git(git_dir, "log", "--format=%s", "--reverse", f"{pr.base_sha}..{pr.head_sha}").decode()
        assert log.splitlines() == [f"Control plane to {v}", f"Add-ons for {v}"], log
    assert [p.number for p in w.steps_prs()] == [p.number for p in hops]  # one PR per step, none twice
    request = w.file("clusters/prod/shop-a/cluster.yaml") or ""
    assert 'version: "1.35"  # bumped by upgrades' in request
    assert "addonVersion: v1.35.3-eksbuild.2" in request
    issue = w.issue()
    assert issue.state == "closed" and issue.number == number


async def test_statuses_move_the_campaign_without_the_reconciler(no_reconciler: Upgrades) -> None:
    w = no_reconciler
    number = await w.d.open_issue("bob", REPO, "Upgrade shop-a", "Time for 1.35.")
    await w.d.comment("bob", REPO, number, "/upgrade shop-a to 1.35 blue-green")
    await w.until(lambda: w.open_step() is not None, "step 1's PR")
    assert w.issue().number != number  # the campaign got its own tracking issue
    # merged -> soaking (pull_request closed); Flux's and the smoke tests' statuses -> smoke -> 10%
    await w.drive(lambda c: c.step is not None and c.step.weight == 50 and c.phase == "merging", timeout=120)
    assert w.weights() == {"shop-a": 90, "shop-b": 10}
    assert [p.title.split(": ", 1)[1] for p in w.steps_prs()][:2] == [
        "Create shop-b at 1.35 beside shop-a, with traffic weight 0",
        "Shift traffic: shop-b 10%, shop-a 90%",
    ]
