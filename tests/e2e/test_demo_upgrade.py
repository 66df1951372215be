"""The demo's upgrade chapter on the simulator with the real bot: ``prod-use1`` upgraded blue/green
through its traffic steps, a failed smoke signal rolled back, the retry, the decommission."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from bot.domain.upgrades.campaign import load_state
from bot.git.files import read_file_at
from bot.sim.demo import REPO, DemoWorld
from bot.sim.demo_upgrade import BLUE, DNS_PATH, GREEN, play_upgrade, with_upgrades

pytestmark = pytest.mark.slow


def test_with_upgrades_turns_the_section_and_the_command_on() -> None:
    config = "commands:\n  enabled: [diff, help]\n  allowed_teams: []\n"
    out = with_upgrades(config)
    assert "  enabled: [diff, help, upgrade]\n" in out
    assert "\nupgrades:\n" in out and "preset: external-dns" in out


async def test_the_upgrade_chapter(tmp_path: Path) -> None:
    lines: list[str] = []
    async with DemoWorld(tmp_path, out=lines.append) as world:
        await world.setup_fleet()
        result = await play_upgrade(world)
        text = "\n".join(lines)
        assert result["phase"] == "done", text
        # What it printed: the checklist, the failed smoke signal and its rollback, the retry.
        assert f"Rolling back: {GREEN}'s smoke signal failed during step 4" in text
        assert f"Paused after the rollback to 10% on {GREEN}" in text
        assert "Resumed at step 4." in text
        assert f"The upgrade of {BLUE} is complete." in text
        assert f"  - [x] Remove {BLUE}'s cluster request" in text
        # The simulator's end state: every step and the rollback merged by carol, in order.
        prs = [world.pr(n) for n in (*result["steps"], result["rollback"])]
        assert all(p.merged and p.merged_by == "carol" and p.base_ref == "env/prod" for p in prs)
        assert [p.title.split(": ", 1)[0] for p in prs[:7]] == [
            f"Upgrade {BLUE} ({i}/7)" for i in (1, 3, 4, 4, 5, 6, 7)
        ]
        assert prs[-1].title == f"Roll back traffic of {BLUE} to 90% ({GREEN} 10%)"
        # The tracking issue: the bot's, closed, its state done; no sentence said twice.
        issue = world.sim.world.issues[REPO][result["issue"]]
        assert issue.user == world.sim.bot_login and issue.state == "closed"
        state = load_state(issue.body or "")
        assert state is not None and state.phase == "done" and state.good_weight == 100
        said = Counter(
            re.sub(r":.*", "", line)
            for author, body in world.driver.comments(REPO, result["issue"])
            if author.endswith("[bot]")
            for line in body.splitlines()
            if line.startswith("Step ")
        )
        merged = {f"Step {n} merged": 2 if n == 4 else 1 for n in (1, 3, 4, 5, 6, 7)}  # 4: the retry
        assert said == Counter({**merged, **{f"Step {n} soaked healthy": 1 for n in (1, 3, 4, 5, 6, 7)}})
        # env/prod: green at the target with the traffic, blue's request and entries gone.
        git_dir = world.sim.world.repos[REPO].path
        green = read_file_at(git_dir, "refs/heads/env/prod", f"clusters/prod/{GREEN}/cluster.yaml") or ""
        assert re.search(r'version: "?1\.35', green)
        assert read_file_at(git_dir, "refs/heads/env/prod", f"clusters/prod/{BLUE}/cluster.yaml") is None
        # blue's Flux folder went to green (names replaced) and left with blue's workloads
        sync = (
            read_file_at(git_dir, "refs/heads/env/prod", f"clusters/prod/{GREEN}/flux/gotk-sync.yaml") or ""
        )
        assert f"clusters/prod/{GREEN}/flux" in sync and f"clusters/prod/{BLUE}/" not in sync
        assert (
            read_file_at(git_dir, "refs/heads/env/prod", f"clusters/prod/{BLUE}/flux/gotk-sync.yaml") is None
        )
        dns = read_file_at(git_dir, "refs/heads/env/prod", DNS_PATH) or ""
        assert re.findall(r"set-identifier: (\S+)", dns) == [GREEN]
        assert re.findall(r'aws-weight: "?(\d+)', dns) == ["100"]
        for branch in ("env/prod", "main"):  # main's by the bot's follow-up PR, merged by bob
            registry = read_file_at(git_dir, f"refs/heads/{branch}", ".github/gitops-bot.yml") or ""
            assert f"name: {GREEN}" in registry and f"name: {BLUE}\n" not in registry, branch
        assert world.pr(result["registry_pr"]).merged
