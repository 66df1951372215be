"""Cherry-pick, revert and merge in a bare repository, with git and no work tree.

Git 2.39 has ``git merge-tree --write-tree`` (the ort merge) but not ``--merge-base``, so a
cherry-pick of ``C`` onto ``O`` is done as a three-way merge whose base is forced: two
temporary commits ``B' = tree(C^)`` and ``O' = tree(O)`` / ``T' = tree(C)``, both children of
``B'``, are merged with ``merge-tree``; their only merge base is ``B'``, which is exactly
``C``'s parent. A revert swaps base and theirs. The temporary commits are unreachable and
left to ``git gc``.

Commit metadata is deterministic: the author (name, email, date) comes from the source
commit, the committer is the bot, and the committer date is the source's committer date,
so running the same operation twice on the same inputs produces the same sha.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bot.git.files import GIT_ENV, GitError, git, rev_parse

BOT_NAME = "gitops-bot[bot]"
BOT_EMAIL = "gitops-bot[bot]@users.noreply.github.com"
# A fixed identity for the scaffolding commits that only exist to steer merge-tree.
_SCAFFOLD_IDENT = ("gitops-bot scaffold", "scaffold@gitops-bot.invalid", "@1 +0000")


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """Metadata of one commit, as git prints it."""

    sha: str
    tree: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    author_date: str  # "<unix seconds> <+hhmm>", git's raw format
    committer_date: str
    message: str

    @property
    def subject(self) -> str:
        return self.message.splitlines()[0] if self.message else ""


@dataclass(frozen=True, slots=True)
class RewriteResult:
    """What a cherry-pick, revert or merge produced.

    ``sha`` is the new commit when ``conflicts`` is empty, else None. ``conflicts`` lists
    the paths git could not merge, sorted; ``messages`` holds git's own explanation.
    ``empty`` is True when the change is already present on ``onto`` (the new commit's tree
    equals ``onto``'s tree); a commit is still made so the promotion has a head to point at.
    """

    sha: str | None
    conflicts: tuple[str, ...] = ()
    messages: tuple[str, ...] = field(default=())
    empty: bool = False

    @property
    def ok(self) -> bool:
        return self.sha is not None


def commit_info(git_dir: Path, rev: str) -> CommitInfo:
    """Read ``rev``'s tree, parents, author, dates and message."""
    fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%ad%x00%cd%x00%B"
    out = git(git_dir, "show", "-s", "--date=raw", f"--format={fmt}", rev_parse(git_dir, rev))
    sha, tree, parents, an, ae, ad, cd, msg = out.decode("utf-8", errors="replace").split("\0", 7)
    return CommitInfo(
        sha=sha,
        tree=tree,
        parents=tuple(parents.split()),
        author_name=an,
        author_email=ae,
        author_date=ad,
        committer_date=cd,
        message=msg.rstrip("\n") + "\n",
    )


def _commit_tree(
    git_dir: Path,
    tree: str,
    parents: tuple[str, ...],
    message: str,
    author: tuple[str, str, str],
    committer: tuple[str, str, str],
) -> str:
    author = (author[0], author[1], _raw_date(author[2]))
    committer = (committer[0], committer[1], _raw_date(committer[2]))
    env_extra = {
        "GIT_AUTHOR_NAME": author[0],
        "GIT_AUTHOR_EMAIL": author[1],
        "GIT_AUTHOR_DATE": author[2],
        "GIT_COMMITTER_NAME": committer[0],
        "GIT_COMMITTER_EMAIL": committer[1],
        "GIT_COMMITTER_DATE": committer[2],
    }
    args = ["git", f"--git-dir={git_dir}", "commit-tree", tree]
    for p in parents:
        args += ["-p", p]
    proc = subprocess.run(
        args, input=message.encode(), capture_output=True, env={**GIT_ENV, **env_extra}, check=False
    )
    if proc.returncode != 0:
        raise GitError(f"git commit-tree failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode().strip()


def _raw_date(date: str) -> str:
    """Mark a raw ``<seconds> <tz>`` date with ``@`` so git never reads it as another format."""
    return f"@{date}" if date[:1].isdigit() else date


def _merge_trees(
    git_dir: Path, ours: str, theirs: str
) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """Run ``git merge-tree --write-tree``; return (tree or None, conflicted paths, conflict messages).

    Output with ``-z``: ``<tree>\\0<path>\\0...\\0\\0`` then per message
    ``<n>\\0<path>*n\\0<type>\\0<text>\\0``. Exit 1 means conflicts, >1 an error.
    """
    proc = subprocess.run(
        [
            "git",
            f"--git-dir={git_dir}",
            "merge-tree",
            "--write-tree",
            "--name-only",
            "-z",
            "--messages",
            ours,
            theirs,
        ],
        capture_output=True,
        env=GIT_ENV,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise GitError(f"git merge-tree failed: {proc.stderr.decode(errors='replace').strip()}")
    text = proc.stdout.decode("utf-8", errors="replace")
    tree, _, rest = text.partition("\0")
    conflicted_part, _, msg_part = rest.partition("\0\0")
    paths = sorted({p for p in conflicted_part.split("\0") if p})
    fields = msg_part.split("\0")
    messages: list[str] = []
    i = 0
    while i < len(fields) and fields[i].isdigit():
        n = int(fields[i])
        kind = fields[i + 1 + n] if i + 1 + n < len(fields) else ""
        msg = fields[i + 2 + n] if i + 2 + n < len(fields) else ""
        if kind.startswith("CONFLICT"):
            messages.append(msg.strip())
        i += 3 + n
    if proc.returncode == 1:
        return None, tuple(paths) or ("(unknown)",), tuple(messages)
    return tree.strip(), (), tuple(messages)


def _three_way(
    git_dir: Path, base_tree: str, ours_tree: str, theirs_tree: str
) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    scaffold = _SCAFFOLD_IDENT
    base = _commit_tree(git_dir, base_tree, (), "base\n", scaffold, scaffold)
    ours = _commit_tree(git_dir, ours_tree, (base,), "ours\n", scaffold, scaffold)
    theirs = _commit_tree(git_dir, theirs_tree, (base,), "theirs\n", scaffold, scaffold)
    return _merge_trees(git_dir, ours, theirs)


def _bot_committer(date: str) -> tuple[str, str, str]:
    return (BOT_NAME, BOT_EMAIL, date)


def _tree_of(git_dir: Path, rev: str) -> str:
    return git(git_dir, "rev-parse", "--verify", f"{rev}^{{tree}}").decode().strip()


def _parent_tree(git_dir: Path, src: CommitInfo) -> str:
    return _tree_of(git_dir, src.parents[0]) if src.parents else _empty_tree(git_dir)


def _replay(
    git_dir: Path, src: CommitInfo, onto: str, base_tree: str, theirs_tree: str, message: str
) -> RewriteResult:
    """Apply the change ``base_tree -> theirs_tree`` on ``onto`` and commit it with ``src``'s author."""
    onto_sha = rev_parse(git_dir, onto)
    onto_tree = _tree_of(git_dir, onto_sha)
    tree, conflicts, messages = _three_way(git_dir, base_tree, onto_tree, theirs_tree)
    if tree is None:
        return RewriteResult(None, conflicts, messages)
    sha = _commit_tree(
        git_dir,
        tree,
        (onto_sha,),
        message,
        (src.author_name, src.author_email, src.author_date),
        _bot_committer(src.committer_date),
    )
    return RewriteResult(sha, (), messages, empty=tree == onto_tree)


def cherry_pick(git_dir: Path, commit: str, onto: str, *, trailer: str = "") -> RewriteResult:
    """Apply ``commit``'s change (against its first parent) on top of ``onto``.

    A merge commit is picked against its first parent (``-m 1``), which is what a merged PR
    brings to its base branch. A root commit is picked against the empty tree. ``trailer``
    (e.g. ``(cherry picked from commit ...)``) is appended to the message after a blank line.
    """
    src = commit_info(git_dir, commit)
    message = src.message + (f"\n{trailer.strip()}\n" if trailer.strip() else "")
    return _replay(git_dir, src, onto, _parent_tree(git_dir, src), src.tree, message)


def cherry_pick_range(git_dir: Path, commits: list[str], onto: str, *, trailer: str = "") -> RewriteResult:
    """Cherry-pick ``commits`` in order onto ``onto``; stop at the first conflict."""
    head = rev_parse(git_dir, onto)
    result = RewriteResult(head, empty=True)
    all_empty = True
    for c in commits:
        result = cherry_pick(git_dir, c, head, trailer=trailer)
        if result.sha is None:
            return result
        all_empty = all_empty and result.empty
        head = result.sha
    return RewriteResult(head, (), result.messages, empty=all_empty)


def revert(git_dir: Path, commit: str, onto: str, *, reason: str = "") -> RewriteResult:
    """Undo ``commit``'s change (against its first parent) on top of ``onto``.

    The message is ``Revert "<subject>"`` plus ``This reverts commit <sha>.`` and ``reason``.
    """
    src = commit_info(git_dir, commit)
    message = f'Revert "{src.subject}"\n\nThis reverts commit {src.sha}.\n'
    reason = " ".join(reason.split())[:1000]
    if reason:
        message += f"\n{reason}\n"
    return _replay(git_dir, src, onto, src.tree, _parent_tree(git_dir, src), message)


def merge(git_dir: Path, source: str, onto: str, *, message: str) -> RewriteResult:
    """Make a merge commit of ``source`` into ``onto`` (parents: onto, source).

    Author and dates come from ``source``'s tip so the result is deterministic. When
    ``source`` is already contained in ``onto`` the result is ``onto`` itself, marked empty.
    """
    src = commit_info(git_dir, source)
    onto_sha = rev_parse(git_dir, onto)
    if is_ancestor(git_dir, src.sha, onto_sha):
        return RewriteResult(onto_sha, empty=True)
    tree, conflicts, messages = _merge_trees(git_dir, onto_sha, src.sha)
    if tree is None:
        return RewriteResult(None, conflicts, messages)
    sha = _commit_tree(
        git_dir,
        tree,
        (onto_sha, src.sha),
        message.rstrip("\n") + "\n",
        (src.author_name, src.author_email, src.author_date),
        _bot_committer(src.committer_date),
    )
    return RewriteResult(sha, (), messages, empty=tree == _tree_of(git_dir, onto_sha))


def is_ancestor(git_dir: Path, ancestor: str, descendant: str) -> bool:
    """Whether ``ancestor`` is reachable from ``descendant`` (or is it)."""
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", "merge-base", "--is-ancestor", ancestor, descendant],
        capture_output=True,
        env=GIT_ENV,
        check=False,
    )
    return proc.returncode == 0


def _empty_tree(git_dir: Path) -> str:
    return git(git_dir, "hash-object", "-t", "tree", "-w", "--stdin", input=b"").decode().strip()


def created(git_dir: Path, head: str, *existing: str) -> list[str]:
    """The commits reachable from ``head`` and from none of ``existing``, oldest first.

    After a rewrite on top of ``existing`` (the branch it was built on, the source it took
    commits from) these are exactly the commits the rewrite created.
    """
    out = git(git_dir, "rev-list", "--reverse", head, "--not", *existing, "--")
    return out.decode().split()
