"""Crash test of an upgrade campaign: ``python -m bot serve`` SIGKILLed between the writes of a step.

The real bot runs as a subprocess (:class:`tests.hostile.lifecycles.Fleet`) on the simulator with
the upgrade fleet of the end-to-end tests. The simulator kills it at chosen moments, the instant
GitHub has applied one write of the bot and before the bot hears the answer:

- the bot pushed a step's branch, before it opened the PR;
- the bot opened a step's PR, before the label and the state marker in the tracking issue;
- the bot wrote the state marker, before its comment;
- a person merged a step PR, before the bot heard the ``closed`` webhook (delivered to nobody);

then starts it again. Webhooks sent while it is down fail on GitHub's side; the restarted bot
redelivers them, and its reconciler passes carry the campaign on. At the end the campaign is
done with one tracking issue and exactly one PR per step, every step's change on ``env/prod``
once, and no check run created twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bot.domain.upgrades.tracking import STEP_BRANCH_PREFIX
from bot.sim.driver import Driver
from tests.e2e.upgrades_world import BOT, REPO, Upgrades, setup_fleet
from tests.hostile.lifecycles import Fleet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


class Killer:
    """Kills the replica right after the simulator applies a chosen write, once per point."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.fired: list[str] = []
        self.restarts: list[asyncio.Task[None]] = []

    def kill(self, point: str) -> None:
        if point in self.fired:
            return
        self.fired.append(point)
        replica = self.fleet.replicas[0]
        replica.kill()
        self.restarts.append(asyncio.create_task(self._restart(replica)))

    async def _restart(self, replica: Any) -> None:
        await asyncio.sleep(0.5)
        await replica.start(self.fleet.session)

    def install(self) -> None:
        sim = self.fleet.sim
        handlers = sim._handlers
        after_push = sim._after_push

        def pushed(repo: Any, before: dict[str, str], after: dict[str, str], login: str) -> None:
            after_push(repo, before, after, login)
            refs = [r for r in after if before.get(r) != after[r]]
            if login == BOT and any(r.startswith(f"refs/heads/{STEP_BRANCH_PREFIX}") for r in refs):
                self.kill("pushed the step's branch")

        def wrap(operation: str, when: Any, point: str) -> None:
            original = handlers[operation]

            async def handler(req: Any, p: dict[str, str], b: Any, a: Any) -> Any:
                answer = await original(req, p, b, a)
                if answer.status < 300 and when(p, b, a, answer):
                    self.kill(point)
                return answer

            handlers[operation] = handler

        def step_pr(p: dict[str, str], b: Any, a: Any, answer: Any) -> bool:
            return str(b.get("head", "")).startswith(STEP_BRANCH_PREFIX) and "2-" not in b["head"]

        def state_written(p: dict[str, str], b: Any, a: Any, answer: Any) -> bool:
            return a.login == BOT and "Shift traffic" in str((b or {}).get("body", "")) and "50%" in str(b)

        def merged_by_person(p: dict[str, str], b: Any, a: Any, answer: Any) -> bool:
            pr = sim.world.pulls[REPO][int(p["pull_number"])]
            return a.login != BOT and pr.head_ref.startswith(STEP_BRANCH_PREFIX) and "traffic" in pr.head_ref

        sim._after_push = pushed  # type: ignore[method-assign]
        wrap("pulls/create", step_pr, "opened the step's PR")
        wrap("issues/update", state_written, "wrote the state")
        wrap("pulls/merge", merged_by_person, "a person merged a step")


async def _settle(fleet: Fleet) -> None:
    await fleet.sim.wait_for_webhooks()


async def test_an_upgrade_campaign_survives_sigkills(tmp_path: Path) -> None:
    started = time.monotonic()

    async def setup(d: Driver) -> None:
        await setup_fleet(d, "1.33", "blue-green")

    async with Fleet(tmp_path, setup=setup) as fleet:
        w = Upgrades(fleet.driver, lambda: _settle(fleet))
        killer = Killer(fleet)
        await w.until(lambda: len(w.issues()) == 1, "the calendar's issue", timeout=90)
        killer.install()
        number = w.issue().number
        await fleet.driver.comment("bob", REPO, number, "/upgrade shop-a to 1.35 blue-green")
        await w.until(lambda: w.open_step() is not None, "step 1's PR", timeout=90)

        async def approve(pr: Any) -> None:
            c = w.campaign()
            if c is not None and c.step is not None and c.step.kind == "decommission-cluster":
                await fleet.driver.approve("sre-lead", REPO, pr.number)

        await w.drive(lambda c: c.phase == "done", on_pr=approve, timeout=240)
        await asyncio.gather(*killer.restarts)
        await fleet.settle(quiet=4.0)

        # every kill point fired, and nothing was lost or done twice
        assert len(killer.fired) == 4, killer.fired
        assert [i.number for i in w.issues()] == [number] and w.issue().state == "closed"
        prs = w.steps_prs()
        branches = Counter(p.head_ref for p in prs)
        assert all(n == 1 for n in branches.values()), branches
        assert len(prs) == 6 and all(p.merged and p.user == BOT for p in prs), prs
        assert len(w.registry_prs()) == 1  # the follow-up on main, once
        c = w.campaign()
        assert c is not None and c.phase == "done" and c.done_steps == tuple(range(7))
        assert w.weights() == {"shop-b": 100}
        assert w.file("clusters/prod/shop-a/cluster.yaml") is None
        said = Counter(b.split(":")[0] for b in w.bot_comments(number) if b.startswith("Opened step"))
        assert all(n == 1 for n in said.values()), said
        # a check run is never created twice, except the fresh run write_check_runs makes on purpose
        # when the newest carries annotations (GitHub appends them): a head checked again after a crash
        runs = [r for r in fleet.sim.world.runs.values() if r.repo == REPO]
        plain = Counter((r.head_sha, r.name) for r in runs if not r.annotations)
        assert [k for k, n in plain.items() if n > 1] == [], plain
        for p in prs:
            newest = {r.name: r for r in sorted(runs, key=lambda r: r.id) if r.head_sha == p.head_sha}
            assert all(r.status == "completed" for r in newest.values()), (p.number, newest)
    print(
        f"\ncrash upgrade: 6 step PRs, {len(killer.fired)} SIGKILLs ({'; '.join(killer.fired)}), "
        f"{time.monotonic() - started:.1f}s"
    )
