"""The one repository-access fake (``RepoAccess``) for handler tests.

``FakeRepoAccess()`` fails loudly on any git access (a handler that must not need a mirror);
``FakeRepoAccess(path=...)`` hands out one local repository as it is; ``FakeRepoAccess(remote=...,
mirror=...)`` fetches a "remote" (a bare repository or the simulator's git URL) into a bare
mirror on every call, as the real mirror does, and pushes back to it. Calls are recorded.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.git.files import GIT_ENV


@dataclass
class FakeRepoAccess:
    path: Path | None = None
    remote: Path | str | None = None
    mirror: Path | None = None
    fetch_refs: bool = False  # also fetch the refs a handler asks for (the simulator serves them)
    fetched: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    pushes: list[tuple[str, ...]] = field(default_factory=list)
    fetches: int = 0
    available: bool = True

    async def git_dir(self, full_name: str, *, refs: Sequence[str] = ()) -> Path:
        self.fetched.append((full_name, tuple(refs)))
        if self.path is not None:
            return self.path
        if self.remote is None or self.mirror is None:
            raise AssertionError("this handler must not fetch the repository")
        if not self.mirror.exists():
            _git("init", "-q", "--bare", str(self.mirror))
        specs = ["+refs/heads/*:refs/heads/*", *(f"+{r}:{r}" for r in refs if self.fetch_refs)]
        await asyncio.to_thread(
            _git, f"--git-dir={self.mirror}", "fetch", "-q", "--prune", str(self.remote), *specs
        )
        self.fetches += 1
        return self.mirror

    async def push(self, full_name: str, refspecs: Sequence[str], *, force: bool = False) -> None:
        if self.remote is None or self.mirror is None:
            raise AssertionError("this handler must not push")
        specs = [("+" if force else "") + s for s in refspecs]
        _git(f"--git-dir={self.mirror}", "push", "-q", str(self.remote), *specs)
        self.pushes.append(tuple(specs))


def _git(*args: str) -> None:
    subprocess.run(["git", *args], check=True, env=GIT_ENV, capture_output=True)
