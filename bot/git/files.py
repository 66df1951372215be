"""Read files and history from a (bare) git repository without a work tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "HOME": "/nonexistent",
    "LC_ALL": "C",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


class GitError(RuntimeError):
    """A git command failed; the message holds git's own error text (never a token)."""


def git(git_dir: Path, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
    """Run ``git --git-dir=git_dir args...`` and return its standard output."""
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", *args],
        input=input,
        capture_output=True,
        env=GIT_ENV,
        check=False,
    )
    if check and proc.returncode != 0:
        raise GitError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def read_file_at(git_dir: Path, rev: str, path: str) -> str | None:
    """Return the text of ``path`` at ``rev``, or None when it does not exist there."""
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", "cat-file", "blob", f"{rev}:{path}"],
        capture_output=True,
        env=GIT_ENV,
        check=False,
    )
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", errors="replace")


def changed_paths(git_dir: Path, base: str, head: str) -> list[str]:
    """Paths that differ between the merge base of ``base`` and ``head``, and ``head``."""
    merge_base = git(git_dir, "merge-base", base, head).decode().strip()
    out = git(git_dir, "diff", "--name-only", "-z", "--no-renames", merge_base, head)
    return sorted(p for p in out.decode("utf-8", errors="replace").split("\0") if p)


def rev_parse(git_dir: Path, rev: str) -> str:
    """Resolve ``rev`` to a full commit sha."""
    return git(git_dir, "rev-parse", "--verify", f"{rev}^{{commit}}").decode().strip()
