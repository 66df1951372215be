"""The bot's own commits pass its signature policy; anyone else's commit on its branch does not.

The bot makes commits for promotions (cherry-picks), rollbacks and upgrade steps. It records
each one in its store before pushing, and the ``gitops-bot/signatures`` check accepts exactly
those shas as the bot's. Here signatures are required on ``env/staging``'s paths: the promotion
PR's check passes with the cherry-pick "made by gitops-bot"; when a writer adds a commit to the
promotion branch, that commit is judged like anyone's (unsigned: failure) while the bot's stays
accepted. Before, the bot failed its own check on every promotion into a signed path, and its
validate check repeated the verdict with the base branch's keys even under ``trust: github``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.sim.demo import DemoWorld
from tests.e2e.test_promotion_attacks import CONFIG, EVIL, EVIL_PATH, healthy, merged_change, quiet, start

pytestmark = pytest.mark.slow

SIGNED_CONFIG = CONFIG + "signatures:\n  required: true\n  trust: github\n"


def _run(world: DemoWorld, number: int, name: str) -> dict[str, Any]:
    [run] = [r for r in world.driver.check_runs("example-org/fleet", number) if r["name"] == name]
    return run


async def test_the_bots_cherry_pick_passes_and_a_writers_extra_commit_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tests.e2e.test_promotion_attacks.CONFIG", SIGNED_CONFIG)
    async with DemoWorld(tmp_path, out=quiet, reconcile_interval=1.0) as world:
        await start(world)
        _, sha, promotion = await merged_change(world)
        await world.until(lambda: "gitops-bot/signatures" in world.checks(promotion.number), "signatures", 30)
        run = _run(world, promotion.number, "gitops-bot/signatures")
        assert run["conclusion"] == "success", run["summary"]
        assert (
            "made by gitops-bot" in run["summary"] and run["title"] == "Signatures OK: 1 made by gitops-bot"
        )

        await world.driver.push(
            "mallory", "example-org/fleet", promotion.head_ref, {EVIL_PATH: EVIL}, message="more"
        )
        await healthy(world, sha)
        await world.until(
            lambda: world.checks(promotion.number).get("gitops-bot/signatures") == "failure",
            "the new verdict",
            30,
        )
        run = _run(world, promotion.number, "gitops-bot/signatures")
        summary = run["summary"]
        assert run["title"].startswith("1 of 2 commits fail"), run["title"]
        rows = [line for line in summary.splitlines() if line.startswith("| ")]
        assert any("❌" in r and "more" in r and "not signed" in r for r in rows), rows
        assert any("✅" in r and "made by gitops-bot" in r for r in rows), rows
        assert not world.pr(promotion.number).merged
        # signatures are judged once, by their own check: validate does not repeat them
        await world.until(
            lambda: world.checks(promotion.number).get("gitops-bot/validate") is not None, "validate"
        )
        assert world.checks(promotion.number)["gitops-bot/validate"] == "success"
