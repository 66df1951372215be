"""End to end: people with ordinary access try to get content merged without review (issue 13).

Each test plays one attack on the GitHub simulator against the real bot (``create_app``:
webhook, SQLite store, worker, git mirror, every handler, the reconciler every second), as
``gitops-bot demo`` runs it. Each merged the attacker's content (or edited their comment)
before the bot recognised promotions by its own records; each must leave it unmerged now.

The repository: ``env/dev`` → ``env/staging``, both merging their promotions themselves once
dev's Flux reports healthy; every ordinary PR needs one approval.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bot.domain.promotion.plan import History, marker
from bot.git.files import read_file_at, rev_parse
from bot.sim.demo import HEALTH_CONTEXT, DemoWorld

pytestmark = pytest.mark.slow

REPO = "example-org/fleet"
CONFIG = f"""\
version: 1
environments:
  - name: dev
    branch: env/dev
    auto_merge: true
    gates: {{health: {{contexts: [{HEALTH_CONTEXT}]}}}}
  - name: staging
    branch: env/staging
    auto_merge: true
approvals:
  rules:
    - name: review
      require: {{count: 1}}
"""
CLUSTER = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  size: '{size}'\n"
EVIL = CLUSTER.format(name="evil", size=999)
EVIL_PATH = "clusters/staging/evil.yaml"


async def start(world: DemoWorld) -> None:
    """People (mallory may write, tia may triage, eve may read), the repository, the App."""
    d = world.driver
    people = {"alice": "write", "bob": "maintain", "mallory": "write", "tia": "triage", "eve": "read"}
    for login in people:
        d.user(login, email=f"{login}@example.com")
    d.org("example-org", members=list(people))
    d.repo(REPO, collaborators=people)
    d.install("example-org")
    files = {".github/gitops-bot.yml": CONFIG, "clusters/dev/a.yaml": CLUSTER.format(name="a", size=1)}
    for branch in ("main", "env/dev", "env/staging"):
        await d.push("bob", REPO, branch, dict(files), message="The fleet", base=None)
    await world.settle()


def world_ref(world: DemoWorld, branch: str) -> str:
    return rev_parse(world.sim.world.repos[REPO].path, f"refs/heads/{branch}")


async def healthy(world: DemoWorld, sha: str) -> None:
    """Flux reports env/dev healthy at ``sha`` (bob stands in for its notification-controller)."""
    path = f"/repos/{REPO}/statuses/{sha}"
    await world.driver.api("bob", "POST", path, {"state": "success", "context": HEALTH_CONTEXT})
    await world.settle()


async def merged_change(world: DemoWorld, *, before_merge: Any = None) -> tuple[int, str, Any]:
    """alice's reviewed change merges into env/dev; return (its number, merge sha, the promotion PR)."""
    d = world.driver
    await d.push(
        "alice", REPO, "request/b", {"clusters/dev/b.yaml": CLUSTER.format(name="b", size=2)}, base="env/dev"
    )
    number = await d.open_pr("alice", REPO, "request/b", base="env/dev", title="Add cluster b")
    await d.approve("bob", REPO, number)
    if before_merge is not None:
        await before_merge(number)
    await world.settle()
    merged = await d.merge("bob", REPO, number)
    assert await world.until(lambda: world.promotion_into("env/staging") is not None, "the promotion", 30)
    promotion = world.promotion_into("env/staging")
    assert promotion is not None and not promotion.merged
    return number, str(merged["sha"]), promotion


async def after_a_reconcile(world: DemoWorld) -> None:
    """Let every webhook be processed and the reconciler pass at least once more."""
    await world.settle()
    await world.until(lambda: False, "nothing", timeout=2.5)  # two reconciler passes


def staging_has_evil(world: DemoWorld) -> bool:
    return read_file_at(world.sim.world.repos[REPO].path, "refs/heads/env/staging", EVIL_PATH) is not None


def quiet(_: str) -> None:
    return None


async def test_a_writer_cannot_forge_a_promotion_pr(tmp_path: Path) -> None:
    async with DemoWorld(tmp_path, out=quiet, reconcile_interval=1.0) as world:
        await start(world)
        green = world_ref(world, "env/dev")
        await healthy(world, green)
        d = world.driver
        branch = "gitops-bot/promote/staging/1234567"
        await d.push("mallory", REPO, branch, {EVIL_PATH: EVIL}, base="env/staging", message="evil")
        forged = History(
            1, "Add cluster b", "dev", "staging", 1, green, "cherry-pick", merged_at="2020-01-01T00:00:00Z"
        )
        body = f"## Promote #1 to `staging`\n\n### Gates\n\n\n{marker(forged)}\n"
        number = await d.open_pr(
            "mallory", REPO, branch, base="env/staging", title="Promote #1 to staging: b", body=body
        )
        await d.api(
            "mallory", "POST", f"/repos/{REPO}/issues/{number}/labels", {"labels": ["gitops-bot/promotion"]}
        )
        await after_a_reconcile(world)

        assert not world.pr(number).merged and not staging_has_evil(world)
        assert world.checks(number).get("gitops-bot/approvals") == "failure"  # reviewed like any PR


async def test_an_extra_commit_on_a_waiting_promotion_is_not_merged(tmp_path: Path) -> None:
    async with DemoWorld(tmp_path, out=quiet, reconcile_interval=1.0) as world:
        await start(world)
        _, sha, promotion = await merged_change(world)
        await world.driver.push(
            "mallory", REPO, promotion.head_ref, {EVIL_PATH: EVIL}, message="one more thing"
        )
        await healthy(world, sha)  # every gate of the promotion now holds
        await after_a_reconcile(world)

        assert not world.pr(promotion.number).merged and not staging_has_evil(world)
        assert world.checks(promotion.number).get("gitops-bot/approvals") == "failure"
        bot_said = [b for a, b in world.driver.comments(REPO, promotion.number) if a == world.sim.bot_login]
        assert any("Someone other than the bot pushed to this branch" in b for b in bot_said), bot_said


async def test_editing_the_body_marker_does_not_skip_health(tmp_path: Path) -> None:
    async with DemoWorld(tmp_path, out=quiet, reconcile_interval=1.0) as world:
        await start(world)
        green = world_ref(world, "env/dev")
        await healthy(world, green)  # an older commit was healthy; the change is not yet
        _, _, promotion = await merged_change(world)
        d = world.driver
        body = str((await d.api("mallory", "GET", f"/repos/{REPO}/pulls/{promotion.number}"))["body"])
        edited = re.sub(r'"source_sha":"[0-9a-f]+"', f'"source_sha":"{green}"', body)
        assert edited != body
        await d.api("mallory", "PATCH", f"/repos/{REPO}/pulls/{promotion.number}", {"body": edited})
        await d.api(
            "mallory", "POST", f"/repos/{REPO}/issues/{promotion.number}/labels", {"labels": ["nudge"]}
        )
        await after_a_reconcile(world)

        assert not world.pr(promotion.number).merged
        assert world.checks(promotion.number).get("gitops-bot/promotion") == "in_progress"  # waits for health


async def test_a_planted_marker_comment_is_never_the_bots(tmp_path: Path) -> None:
    async with DemoWorld(tmp_path, out=quiet, reconcile_interval=1.0) as world:
        await start(world)
        planted = "<!-- gitops-bot:promotion-conflict staging -->\nI wrote this myself."
        ids: list[int] = []

        async def plant(number: int) -> None:
            ids.append(await world.driver.comment("eve", REPO, number, planted))

        mark = world.sim.requests.mark()
        number, _, _ = await merged_change(world, before_merge=plant)
        await after_a_reconcile(world)

        assert ("eve", planted) in world.driver.comments(REPO, number)
        edits = [
            e for e in world.sim.requests.since(mark) if e.path == f"/repos/{REPO}/issues/comments/{ids[0]}"
        ]
        assert edits == []


async def test_a_triage_user_cannot_remove_a_hold(tmp_path: Path) -> None:
    async with DemoWorld(tmp_path, out=quiet, reconcile_interval=1.0) as world:
        await start(world)
        _, sha, promotion = await merged_change(world)
        d = world.driver
        await d.comment("bob", REPO, promotion.number, "/hold until the change window")
        await world.settle()
        await d.api("tia", "DELETE", f"/repos/{REPO}/issues/{promotion.number}/labels/gitops-bot%2Fhold")
        await world.settle()
        await healthy(world, sha)
        await after_a_reconcile(world)

        assert not world.pr(promotion.number).merged
        assert "gitops-bot/hold" in {lbl for lbl in world.pr(promotion.number).labels}
        bot_said = [b for a, b in d.comments(REPO, promotion.number) if a == world.sim.bot_login]
        assert any("@tia" in b and "put back" in b for b in bot_said), bot_said
