"""Git plumbing for the simulator: bare repositories, commit facts, merges without a work tree."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bot.git.files import GIT_ENV, GitError, git

ZERO = "0" * 40
T = TypeVar("T")


def init_bare(path: Path, default_branch: str) -> None:
    """Create a bare repository whose HEAD names ``default_branch``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "init", "--bare", "-q", f"--initial-branch={default_branch}", str(path)],
        check=True,
        env=GIT_ENV,
        capture_output=True,
    )
    git(path, "config", "http.receivepack", "true")
    git(path, "config", "uploadpack.allowAnySHA1InWant", "true")


def refs(path: Path) -> dict[str, str]:
    """All refs of a repository: name -> sha."""
    out = git(path, "for-each-ref", "--format=%(refname) %(objectname)").decode()
    result = {}
    for line in out.splitlines():
        name, sha = line.split(" ", 1)
        result[name] = sha
    return result


def resolve(path: Path, rev: str) -> str | None:
    """Resolve a branch, tag or sha to a commit sha, or None."""
    for candidate in (f"refs/heads/{rev}", f"refs/tags/{rev}", rev):
        out = (
            git(path, "rev-parse", "--verify", "-q", f"{candidate}^{{commit}}", check=False).decode().strip()
        )
        if out:
            return out
    return None


def update_ref(path: Path, ref: str, new: str, old: str | None = None) -> None:
    """Move ``ref`` to ``new`` (optionally only if it is at ``old``)."""
    args = ["update-ref", ref, new] + ([old] if old else [])
    git(path, *args)


def object_type(path: Path, sha: str) -> str | None:
    out = git(path, "cat-file", "-t", sha, check=False).decode().strip()
    return out or None


@dataclass
class Person:
    name: str
    email: str
    date: str  # ISO 8601


@dataclass
class CommitInfo:
    sha: str
    tree: str
    parents: list[str]
    author: Person
    committer: Person
    message: str
    signature: str | None
    payload: str  # the commit object without its signature header, as signed


def _person(line: str) -> Person:
    from datetime import UTC, datetime

    name_email, _, rest = line.rpartition(">")
    name, _, email = name_email.partition("<")
    parts = rest.split()
    ts = int(parts[0]) if parts else 0
    return Person(name.strip(), email.strip(), datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def commit_info(path: Path, sha: str) -> CommitInfo:
    """Parse a commit object, separating any ``gpgsig`` header from the signed payload."""
    raw = git(path, "cat-file", "commit", sha).decode("utf-8", errors="replace")
    head, _, message = raw.partition("\n\n")
    lines = head.split("\n")
    payload_lines: list[str] = []
    sig_lines: list[str] = []
    in_sig = False
    tree = ""
    parents: list[str] = []
    author = committer = Person("", "", "")
    for line in lines:
        if in_sig and line.startswith(" "):
            sig_lines.append(line[1:])
            continue
        in_sig = False
        if line.startswith("gpgsig ") or line.startswith("gpgsig-sha256 "):
            in_sig = True
            sig_lines.append(line.split(" ", 1)[1])
            continue
        payload_lines.append(line)
        key, _, value = line.partition(" ")
        if key == "tree":
            tree = value
        elif key == "parent":
            parents.append(value)
        elif key == "author":
            author = _person(value)
        elif key == "committer":
            committer = _person(value)
    signature = "\n".join(sig_lines) + "\n" if sig_lines else None
    payload = "\n".join(payload_lines) + "\n\n" + message
    full = git(path, "rev-parse", sha).decode().strip()
    return CommitInfo(full, tree, parents, author, committer, message, signature, payload)


_PAIR_CACHE: dict[tuple[str, Path, str, str], Any] = {}
_SHA = re.compile(r"[0-9a-f]{40}")


def _cached(kind: str, path: Path, a: str, b: str, compute: Callable[[], T]) -> T:
    """Memoise a fact about two commits: it never changes when both are full shas."""
    if not (_SHA.fullmatch(a) and _SHA.fullmatch(b)):
        return compute()
    key = (kind, path, a, b)
    if key not in _PAIR_CACHE:
        if len(_PAIR_CACHE) > 4096:
            _PAIR_CACHE.clear()
        _PAIR_CACHE[key] = compute()
    result: T = copy.deepcopy(_PAIR_CACHE[key])
    return result


def rev_list(path: Path, base: str, head: str) -> list[str]:
    """Commits reachable from ``head`` but not ``base``, oldest first."""
    return _cached("rev-list", path, base, head, lambda: _rev_list(path, base, head))


def _rev_list(path: Path, base: str, head: str) -> list[str]:
    out = git(path, "rev-list", "--reverse", "--topo-order", f"{base}..{head}").decode()
    return out.split()


def changed_files(path: Path, base: str, head: str) -> list[dict[str, object]]:
    """Per-file changes between two commits: filename, status, additions, deletions, patch."""
    return _cached("diff", path, base, head, lambda: _changed_files(path, base, head))


def _changed_files(path: Path, base: str, head: str) -> list[dict[str, object]]:
    numstat = git(path, "diff", "--numstat", "-z", "--no-renames", base, head).decode(errors="replace")
    status = git(path, "diff", "--name-status", "-z", "--no-renames", base, head).decode(errors="replace")
    st_parts = [p for p in status.split("\0") if p]
    kinds = {"A": "added", "M": "modified", "D": "removed", "T": "changed"}
    statuses = {
        st_parts[i + 1]: kinds.get(st_parts[i][0], "modified") for i in range(0, len(st_parts) - 1, 2)
    }
    whole = git(path, "diff", "--no-renames", base, head).decode(errors="replace")
    patches = ["diff --git " + chunk for chunk in whole.split("\ndiff --git ")]
    if patches:
        patches[0] = patches[0].removeprefix("diff --git ")
    files: list[dict[str, object]] = []
    entries = [e for e in numstat.split("\0") if e]
    for index, entry in enumerate(entries):
        add, dele, name = entry.split("\t", 2)
        adds = int(add) if add.isdigit() else 0
        dels = int(dele) if dele.isdigit() else 0
        # ``git diff`` lists files in the same order as ``--numstat``
        patch = patches[index] if index < len(patches) else ""
        hunk = patch.find("\n@@")
        files.append(
            {
                "filename": name,
                "status": statuses.get(name, "modified"),
                "additions": adds,
                "deletions": dels,
                "changes": adds + dels,
                "patch": patch[hunk + 1 :].rstrip("\n") + "\n" if hunk >= 0 else "",
            }
        )
    return files


def merge_base(path: Path, a: str, b: str) -> str | None:
    out = git(path, "merge-base", a, b, check=False).decode().strip()
    return out or None


def merge_tree(path: Path, ours: str, theirs: str) -> str | None:
    """The tree of merging ``theirs`` into ``ours``, or None on a conflict."""
    return _cached("merge-tree", path, ours, theirs, lambda: _merge_tree(path, ours, theirs))


def _merge_tree(path: Path, ours: str, theirs: str) -> str | None:
    proc = subprocess.run(
        ["git", f"--git-dir={path}", "merge-tree", "--write-tree", "--no-messages", ours, theirs],
        capture_output=True,
        env=GIT_ENV,
        check=False,
    )
    if proc.returncode == 1:
        return None
    if proc.returncode != 0:
        raise GitError(f"git merge-tree failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode().split()[0]


def commit_tree(
    path: Path, tree: str, parents: list[str], message: str, author: Person, committer: Person
) -> str:
    """Write a commit object; dates are ISO strings or empty for now."""
    env = dict(GIT_ENV)
    env.update(
        GIT_AUTHOR_NAME=author.name,
        GIT_AUTHOR_EMAIL=author.email,
        GIT_COMMITTER_NAME=committer.name,
        GIT_COMMITTER_EMAIL=committer.email,
    )
    if author.date:
        env["GIT_AUTHOR_DATE"] = author.date
    if committer.date:
        env["GIT_COMMITTER_DATE"] = committer.date
    args = ["git", f"--git-dir={path}", "commit-tree", tree]
    for p in parents:
        args += ["-p", p]
    proc = subprocess.run(args, input=message.encode(), capture_output=True, env=env, check=False)
    if proc.returncode != 0:
        raise GitError(f"git commit-tree failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode().strip()


def cherry_pick_tree(path: Path, onto: str, commit: str) -> str | None:
    """Apply ``commit``'s change on top of ``onto`` in a temporary index; None when it does not apply."""
    info = commit_info(path, commit)
    parent = info.parents[0] if info.parents else None
    with tempfile.TemporaryDirectory(prefix="sim-idx-") as tmp:
        env = dict(GIT_ENV, GIT_INDEX_FILE=os.path.join(tmp, "index"))
        subprocess.run(
            ["git", f"--git-dir={path}", "read-tree", onto], env=env, check=True, capture_output=True
        )
        diff_args = ["diff-tree", "-p", "--binary", "--full-index", "--no-renames"]
        diff_args += [parent, commit] if parent else ["--root", commit]
        patch = git(path, *diff_args)
        if patch.strip():
            proc = subprocess.run(
                ["git", f"--git-dir={path}", "apply", "--cached", "-"],
                input=patch,
                env=env,
                capture_output=True,
                check=False,
            )
            if proc.returncode != 0:
                return None
        out = subprocess.run(
            ["git", f"--git-dir={path}", "write-tree"], env=env, capture_output=True, check=True
        )
        return out.stdout.decode().strip()


def is_ancestor(path: Path, a: str, b: str) -> bool:
    proc = subprocess.run(
        ["git", f"--git-dir={path}", "merge-base", "--is-ancestor", a, b], env=GIT_ENV, capture_output=True
    )
    return proc.returncode == 0


def fetch_objects(path: Path, source: Path, sha: str) -> None:
    """Copy commit ``sha`` and its history from the repository at ``source`` (a fork's network)."""
    if object_type(path, sha) == "commit":
        return
    git(
        path,
        "-c",
        "uploadpack.allowAnySHA1InWant=true",
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        str(source),
        sha,
    )
