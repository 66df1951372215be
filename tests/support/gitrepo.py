"""Build real bare git repositories for the promotion tests, commit by commit, with plumbing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bot.git.files import GIT_ENV


class BareRepo:
    """A bare repository whose branches are written with a temporary index (no work tree)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True, env=GIT_ENV)
        self._clock = 1_700_000_000

    def git(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(
            ["git", f"--git-dir={self.path}", *args],
            input=input,
            capture_output=True,
            env={**GIT_ENV, **(env or {})},
            check=True,
        )
        return proc.stdout.decode().strip()

    def sha(self, rev: str) -> str:
        return self.git("rev-parse", "--verify", f"{rev}^{{commit}}")

    def read(self, rev: str, path: str) -> str | None:
        proc = subprocess.run(
            ["git", f"--git-dir={self.path}", "cat-file", "blob", f"{rev}:{path}"],
            capture_output=True,
            env=GIT_ENV,
            check=False,
        )
        return proc.stdout.decode() if proc.returncode == 0 else None

    def commit(
        self,
        branch: str,
        files: dict[str, str | None],
        message: str,
        *,
        parents: list[str] | None = None,
        author: str = "Alice",
    ) -> str:
        """Commit ``files`` (None deletes) on top of ``branch`` (or ``parents``) and move the branch."""
        index = self.path / f"index-{os.getpid()}"
        env = {"GIT_INDEX_FILE": str(index)}
        if parents is None:
            try:
                parents = [self.sha(f"refs/heads/{branch}")]
            except subprocess.CalledProcessError:
                parents = []
        if parents:
            self.git("read-tree", parents[0], env=env)
        else:
            self.git("read-tree", "--empty", env=env)
        for path, text in files.items():
            if text is None:
                self.git("update-index", "--force-remove", path, env=env)
            else:
                blob = self.git("hash-object", "-w", "--stdin", input=text.encode())
                self.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = self.git("write-tree", env=env)
        index.unlink(missing_ok=True)
        self._clock += 60
        ident = {
            "GIT_AUTHOR_NAME": author,
            "GIT_AUTHOR_EMAIL": f"{author.lower()}@example.com",
            "GIT_AUTHOR_DATE": f"{self._clock} +0000",
            "GIT_COMMITTER_NAME": "GitHub",
            "GIT_COMMITTER_EMAIL": "noreply@github.com",
            "GIT_COMMITTER_DATE": f"{self._clock} +0000",
        }
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        sha = self.git(*args, input=message.encode(), env=ident)
        self.git("update-ref", f"refs/heads/{branch}", sha)
        return sha

    def merge_pr(self, base: str, head: str, title: str, number: int) -> str:
        """Merge ``head`` into ``base`` with a merge commit, as GitHub's merge button does."""
        from bot.git.rewrite import merge

        result = merge(
            self.path,
            f"refs/heads/{head}",
            f"refs/heads/{base}",
            message=f"Merge pull request #{number}\n\n{title}",
        )
        assert result.sha is not None
        self.git("update-ref", f"refs/heads/{base}", result.sha)
        return result.sha
