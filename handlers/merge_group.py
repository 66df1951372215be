"""GitHub's merge queue: report the required gitops-bot checks on each merge group.

A branch that requires a merge queue and gitops-bot's checks merges nothing until those
checks are reported on the merge group's head commit; without this handler the queue waits
until it times out. On ``merge_group`` ``checks_requested``:

* **fetch**: the mirror of the repository (the read-only ``gh-readonly-queue/...`` branch is
  a branch like any other), and per pull request in the group its head and the bot's own
  check runs there;
* **decide**: :func:`bot.prchecks.build.build_check` on ``base_sha..head_sha`` (the combined change,
  configuration and policy from ``base_sha``, never from a PR), and
  :func:`bot.domain.merge_queue.carry_over` for the per-PR checks;
* **apply**: ``gitops-bot/diff``, ``gitops-bot/validate``, ``gitops-bot``,
  ``gitops-bot/signatures`` and ``gitops-bot/approvals`` on ``head_sha``, idempotently.

On ``destroyed`` with reason ``dequeued`` after a failing combined change, the PR gets one
comment saying why it left the queue (the group's ``gitops-bot`` check is the bot's own).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import gidgethub
import gidgethub.abc
import gidgethub.routing
import gidgethub.sansio

from bot.domain.merge_queue import QueuedPull, QueueRef, carry_over, parse_queue_ref
from bot.git.files import GitError, git
from bot.github.checks import CheckRun, list_check_runs, write_check_runs
from bot.github.comments import upsert_sticky_comment
from bot.github.writes import GitHubWrites
from bot.prchecks.build import PR_CHECKERS, build_check
from bot.prchecks.publish import _CACHE, _installation_id, mask_key, result_check_runs
from bot.service.context import HandlerContext
from handlers.governance import APPROVALS_CHECK, SIGNATURES_CHECK

log = logging.getLogger(__name__)
router = gidgethub.routing.Router()

CARRIED = (SIGNATURES_CHECK, APPROVALS_CHECK)
QUEUE_COMMENT_KEY = "merge-queue"


def _has_commit(git_dir: Path, sha: str) -> bool:
    return git(git_dir, "cat-file", "-t", sha, check=False).decode().strip() == "commit"


def _is_ancestor(git_dir: Path, ancestor: str, sha: str) -> bool:
    try:
        git(git_dir, "merge-base", "--is-ancestor", ancestor, sha)
    except GitError:
        return False
    return True


def _group_numbers(git_dir: Path, ref: QueueRef, head_sha: str) -> set[int]:
    """The PRs in a group: its own, and those queued ahead (their group heads are in this one)."""
    out = git(
        git_dir,
        "for-each-ref",
        "--format=%(refname) %(objectname)",
        f"refs/heads/gh-readonly-queue/{ref.base}/",
    )
    numbers = {ref.number}
    for line in out.decode().splitlines():
        name, _, sha = line.partition(" ")
        other = parse_queue_ref(name)
        if other is not None and other.base == ref.base and _is_ancestor(git_dir, sha, head_sha):
            numbers.add(other.number)
    return numbers


async def _queued_pull(
    gh: gidgethub.abc.GitHubAPI,
    repo: str,
    git_dir: Path,
    number: int,
    base: str,
    head_sha: str,
    writes: GitHubWrites,
) -> QueuedPull:
    pr = await gh.getitem(f"/repos/{repo}/pulls/{number}")
    pr_head = str(pr["head"]["sha"])
    in_group = (
        pr.get("state") == "open"
        and pr["base"]["ref"] == base
        and await asyncio.to_thread(_is_ancestor, git_dir, pr_head, head_sha)
    )
    runs = await list_check_runs(gh, repo, pr_head, CARRIED, writes=writes)
    conclusions = {
        name: (run.get("conclusion") if run.get("status") == "completed" else None)
        for name, run in runs.items()
    }
    return QueuedPull(number, pr_head, bool(in_group), conclusions)


@router.register("merge_group", action="checks_requested")
async def merge_group_checks(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *args: Any, **kwargs: Any
) -> None:
    """Judge the merge group's combined change and report every gitops-bot check on its head."""
    repo = str(event.data["repository"]["full_name"])
    group = event.data["merge_group"]
    head_sha, base_sha, head_ref = str(group["head_sha"]), str(group["base_sha"]), str(group["head_ref"])
    ref = parse_queue_ref(head_ref)
    if ref is None or f"refs/heads/{ref.base}" != group.get("base_ref"):
        log.warning("merge_group on %s: %r is not a merge queue ref; nothing reported", repo, head_ref)
        return
    git_dir = await ctx.repos.git_dir(repo)
    if not await asyncio.to_thread(_has_commit, git_dir, head_sha):
        log.info(
            "merge group %s of %s is gone (destroyed before the fetch); nothing to report", head_ref, repo
        )
        return
    secret = getattr(ctx.settings, "webhook_secret", None)
    key = mask_key(secret if isinstance(secret, bytes) else None, _installation_id(ctx))
    result = await asyncio.to_thread(
        build_check, git_dir, base_sha, head_sha, checkers=PR_CHECKERS, cache=_CACHE, secret_key=key
    )
    numbers = await asyncio.to_thread(_group_numbers, git_dir, ref, head_sha)
    pulls = [
        await _queued_pull(gh, repo, git_dir, n, ref.base, head_sha, ctx.writes) for n in sorted(numbers)
    ]
    carried = [carry_over(name, pulls) for name in CARRIED]
    runs = result_check_runs(result, external_id=f"{repo}@{head_ref}")
    runs += [
        CheckRun(name=c.name, head_sha=head_sha, title=c.title, summary=c.summary, conclusion=c.conclusion)
        for c in carried
    ]
    await write_check_runs(gh, repo, head_sha, runs, writes=ctx.writes)
    log.info("merge group %s of %s: %s", head_ref, repo, ", ".join(f"{r.name}={r.conclusion}" for r in runs))


@router.register("merge_group", action="destroyed")
async def merge_group_destroyed(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *args: Any, **kwargs: Any
) -> None:
    """A group left the queue: when the bot's own verdict on it failed, tell the PR why."""
    repo = str(event.data["repository"]["full_name"])
    group = event.data["merge_group"]
    ref = parse_queue_ref(str(group.get("head_ref", "")))
    if event.data.get("reason") != "dequeued" or ref is None:
        return
    head_sha = str(group["head_sha"])
    runs = await list_check_runs(gh, repo, head_sha, writes=ctx.writes)
    failed = [r for r in runs.values() if r.get("status") == "completed" and r.get("conclusion") == "failure"]
    if not failed:
        return  # removed by a person, or by another check: GitHub says so on the PR
    rows = [f"| `{r['name']}` | {(r.get('output') or {}).get('title') or 'failure'} |" for r in failed]
    body = "\n".join(
        [
            "### gitops-bot: removed from the merge queue",
            "",
            f"The merge group `{head_sha[:12]}` (this pull request on `{ref.base}` with the entries ahead "
            "of it) failed:",
            "",
            "| Check | Result |",
            "| --- | --- |",
            *sorted(rows),
            "",
            "The combined change differs from this pull request alone. Bring the branch up to date with "
            f"`{ref.base}`, fix what the checks report, and queue it again.",
        ]
    )
    try:
        await upsert_sticky_comment(
            gh, repo, ref.number, QUEUE_COMMENT_KEY, body, writes=ctx.writes, bot_login=ctx.bot_login
        )
    except gidgethub.BadRequest as exc:
        log.info("cannot comment on %s#%s: %s", repo, ref.number, exc.status_code)
