"""Crash test with full lifecycles: cluster requests from push to prod while the bot is SIGKILLed.

The bot runs as real ``python -m bot serve`` processes (worker, reconciler and missed-delivery
redelivery in-process) on the simulator with the example fleet. People play N cluster-request
lifecycles (push, PR into env/dev, checks, two approvals, merge, Flux health, the bot's staging
promotion merging itself, the prod promotion opening) while a seeded killer SIGKILLs a replica
at random moments and restarts it. Webhooks sent while the replica is down fail on GitHub's
side; the restarted bot redelivers them and the reconciler repairs what a crash cut short.
At the end every PR has each check run once on its head, one sticky diff comment, and exactly
one staging (merged) and one prod (open) promotion PR: nothing lost, nothing twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from bot.queue.base import Status
from tests.hostile.lifecycles import Fleet, Lifecycle

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

LIFECYCLES = 3
SEED = 8


async def play_with_killer(fleet: Fleet, seed: int) -> tuple[list[Lifecycle], int]:
    """Play the lifecycles one after the other while a seeded killer SIGKILLs and restarts replicas."""
    rng = random.Random(seed)
    kills = 0
    done = asyncio.Event()

    async def killer() -> None:
        nonlocal kills
        while not done.is_set():
            await asyncio.sleep(rng.uniform(2.0, 6.0))
            if done.is_set():
                return
            victim = rng.choice(fleet.replicas)
            victim.kill()
            kills += 1
            await asyncio.sleep(rng.uniform(0.0, 0.8))
            await victim.start(fleet.session)

    killing = asyncio.create_task(killer())
    try:
        lives = [await fleet.lifecycle(i) for i in range(LIFECYCLES)]
    finally:
        done.set()
        await killing
    return lives, kills


async def settle_and_verify(fleet: Fleet, lives: list[Lifecycle], timeout: float = 60.0) -> dict[Status, int]:
    """Let the queue drain, redelivery and two reconciler passes run, then judge the final state."""
    counts = await fleet.settle(timeout=timeout)
    fleet.verify(lives)
    assert counts[Status.DEAD] == 0, f"dead letters: {counts}"
    return counts


async def survive_sigkills(fleet: Fleet, seed: int, label: str) -> None:
    """Play the lifecycles with the killer on, settle, judge, and print what happened."""
    started = time.monotonic()
    async with fleet:
        lives, kills = await play_with_killer(fleet, seed)
        await settle_and_verify(fleet, lives)
    assert kills >= 1
    print(
        f"\ncrash lifecycles ({label}): N={len(lives)} lifecycles, {kills} SIGKILLs, "
        f"{time.monotonic() - started:.1f}s; PRs "
        + ", ".join(f"#{x.number}->#{x.staging}->#{x.prod}" for x in lives)
    )


async def test_lifecycles_survive_sigkill_on_sqlite(tmp_path: Path) -> None:
    await survive_sigkills(Fleet(tmp_path), SEED, "SQLite, 1 replica")


@pytest.mark.postgres
async def test_lifecycles_survive_sigkill_on_two_postgres_replicas(pg_dsn: str, tmp_path: Path) -> None:
    await survive_sigkills(
        Fleet(tmp_path, database_url=pg_dsn, replicas=2), SEED + 1, "PostgreSQL, 2 replicas"
    )
