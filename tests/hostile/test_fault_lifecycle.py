"""Fault test with full lifecycles: 20 % of GitHub's REST answers fail or are rate-limited.

The same cluster-request lifecycles as the crash test (no kills, and played at the same time,
so promotions of different requests overlap), against one ``python -m bot serve`` while the
simulator answers about 10 % of REST calls with a 502, 5 % with a secondary rate limit (403 +
``Retry-After``) and 5 % with a 429 (rules are tried in order, hence 0.05/0.90 and 0.05/0.85).
Every route is faulted, the App token route included; git's smart HTTP is not (the
simulator never faults it). People retry too, as they would in a browser. Every lifecycle still ends correct.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.sim.faults import FaultRule
from tests.hostile.lifecycles import Fleet
from tests.hostile.test_crash_lifecycle import settle_and_verify

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

LIFECYCLES = 3


async def test_lifecycles_end_correct_under_github_faults(tmp_path: Path) -> None:
    started = time.monotonic()
    async with Fleet(tmp_path) as fleet:
        mark = fleet.sim.requests.mark()
        rules = [
            fleet.sim.add_fault(FaultRule(kind="error", route="*", probability=0.10)),
            fleet.sim.add_fault(
                FaultRule(kind="secondary_rate_limit", route="*", probability=0.05 / 0.90, retry_after=1)
            ),
            fleet.sim.add_fault(
                FaultRule(kind="rate_limit_429", route="*", probability=0.05 / 0.85, retry_after=1)
            ),
        ]
        lives = list(await asyncio.gather(*(fleet.lifecycle(i) for i in range(LIFECYCLES))))
        # Every rate limit pauses the whole installation for a second: the follow-up work drains slowly.
        await settle_and_verify(fleet, lives, timeout=150.0)
        answers = [e for e in fleet.sim.requests.since(mark) if ".git" not in e.path]  # REST only
        faulted = [e for e in answers if e.fault]
        by_kind = {r.kind: r.fired for r in rules}
    assert sum(by_kind.values()) == len(faulted) > 0
    print(
        f"\nfault lifecycles: N={len(lives)} lifecycles; {len(faulted)} of {len(answers)} REST answers "
        f"faulted ({100 * len(faulted) / len(answers):.0f} %: {by_kind}); {time.monotonic() - started:.1f}s"
    )
