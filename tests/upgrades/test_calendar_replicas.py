"""Two replicas' calendar passes at the same moment open a cluster's upgrade issue once.

Each replica is a handler context with its own write locks (``ctx.writes``) over the same
GitHub; on PostgreSQL their locks share the store's advisory locks, as ``serve`` replicas do.
Without a shared lock the race is real (both list no issue, both open one): the first test
shows it, so the second one's single issue is the lock's doing.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from bot.github.writes import GitHubWrites
from bot.queue import open_store
from handlers.upgrades import calendar_pass
from tests.upgrades.test_campaign_github import TODAY, World, make_world


async def _both_passes(w: World, a: GitHubWrites, b: GitHubWrites) -> list[int]:
    passes = [calendar_pass(w.gh, replace(w.ctx, writes=x), w.gh.full_name, today=TODAY) for x in (a, b)]
    first, second = await asyncio.gather(*passes)
    return first + second


async def test_without_a_shared_lock_two_replicas_race(tmp_path: Path) -> None:
    w = make_world(tmp_path, "1.30")
    assert len(await _both_passes(w, GitHubWrites(), GitHubWrites())) == 2  # the race the lock prevents
    assert len(w.gh.issues) == 2


@pytest.mark.postgres
async def test_replicas_sharing_postgresql_open_the_issue_once(tmp_path: Path, pg_dsn: str) -> None:
    w = make_world(tmp_path, "1.30")
    stores = [open_store(pg_dsn), open_store(pg_dsn)]
    for store in stores:
        await store.open()
    try:
        a, b = (GitHubWrites(shared_lock=getattr(s, "advisory_lock", None)) for s in stores)
        opened = await _both_passes(w, a, b)
        assert len(opened) == 1 and list(w.gh.issues) == opened
        assert await _both_passes(w, a, b) == []  # and never again
    finally:
        for store in stores:
            await store.close()
