"""Fixtures for handler tests: a fleet repo with env branches, a stateful fake GitHub, a RepoAccess."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.git.files import git
from bot.service.context import HandlerContext
from handlers import promotion
from tests.support.github import FakeGitHub, make_event
from tests.support.gitrepo import GitRepo
from tests.support.repos import FakeRepoAccess
from tests.support.store import StateStore

CONFIG = """\
version: 1
environments:
  - name: dev
    branch: env/dev
    auto_merge: true
    gates:
      health: {contexts: [flux/dev]}
      soak: 30m
  - name: staging
    branch: env/staging
    auto_merge: true
    gates:
      health: {contexts: [flux/staging]}
      soak: 10m
  - name: prod
    branch: env/prod
    auto_merge: false
    gates:
      approvals: [prod-owners]
approvals:
  rules:
    - name: prod-owners
      require: {count: 1}
promotion:
  strategy: {strategy}
  rollback_on_red: true
"""

CLUSTER = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  size: '{size}'\n"


def ago(**kw: int) -> str:
    return (datetime.now(UTC) - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class World:
    repo: GitRepo
    gh: FakeGitHub
    ctx: HandlerContext
    access: FakeRepoAccess

    async def dispatch(self, event: str, payload: dict[str, Any]) -> None:
        payload = {
            "sender": {"login": "maintainer"},  # GitHub names who acted; here someone who may
            **payload,
            "repository": {"full_name": "org/fleet", "default_branch": "main"},
        }
        await promotion.router.dispatch(make_event(event, payload), self.gh, self.ctx)

    async def closed(self, number: int) -> None:
        await self.dispatch("pull_request", {"action": "closed", "pull_request": self.gh.pulls[number]})

    def change(
        self, branch: str, base: str, files: dict[str, str | None], title: str, merged_ago: int = 0
    ) -> int:
        """Open a feature PR from ``branch`` onto ``base`` with ``files`` and merge it."""
        self.repo.git("update-ref", f"refs/heads/{branch}", self.repo.sha(f"refs/heads/{base}"))
        self.repo.commit_on(branch, files, title)
        pr = self.gh.open_pr(branch, base, title)
        self.gh.merge_pr(pr["number"])
        if merged_ago:
            pr["merged_at"] = ago(minutes=merged_ago)
        return int(pr["number"])


def make_world(tmp_path: Path, strategy: str = "cherry-pick") -> World:
    repo = GitRepo(tmp_path / "remote.git", bare=True)
    main = repo.commit_on(
        "main", {".github/gitops-bot.yml": CONFIG.replace("{strategy}", strategy)}, "config"
    )
    base = repo.commit_on(
        "env/dev",
        {"clusters/a.yaml": CLUSTER.format(name="a", size=1), "README.md": "fleet\n"},
        "init",
        parents=[main],
    )
    repo.git("update-ref", "refs/heads/env/staging", base)
    repo.git("update-ref", "refs/heads/env/prod", base)
    gh = FakeGitHub(repo=repo, permissions={"maintainer": "maintain"})
    access = FakeRepoAccess(remote=repo.path, mirror=tmp_path / "mirror.git")
    ctx = HandlerContext(repos=access, store=StateStore(), diff_renderer=changed_files)
    return World(repo, gh, ctx, access)


async def changed_files(git_dir: Path, base: str, head: str, env: str) -> str:
    """A stand-in for the render engine: the changed paths as a diff fence."""
    names = git(git_dir, "diff", "--name-status", "--no-renames", base, head).decode()
    return f"Changes for `{env}`:\n\n```diff\n{names}```"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)
