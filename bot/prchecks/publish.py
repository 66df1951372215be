"""The pull-request checks: render the diff, validate, post check runs and the sticky comment.

One entry point, :func:`build_and_post`, called by the ``pull_request`` handler (and so
by ``/diff``, ``/validate`` and the reconciler through ``run_pr_checks``). Glue around pure code:

* **fetch**: the bare mirror of the repository with ``refs/pull/N/head`` (fork PRs included);
* **decide**: :func:`bot.prchecks.build.build_check` (config from the BASE revision, kustomize render
  of the targets the change touches, validation, Gatekeeper, signatures with ``trust: keys``);
* **apply**: check runs ``gitops-bot/diff``, ``gitops-bot/validate`` and the umbrella
  ``gitops-bot`` on the head sha, and the sticky diff comment, every write idempotent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import gidgethub
import gidgethub.abc

from bot.domain.diff import diff_check_output, diff_comment_parts
from bot.domain.masking import Masker
from bot.domain.model import Finding, Severity
from bot.domain.validate import validation_summary
from bot.github.checks import CHECK_NAME, CheckRun, annotations_from_findings, write_check_runs
from bot.github.comments import upsert_comment_parts
from bot.prchecks.build import PR_CHECKERS, CheckResult, build_check
from bot.render_runtime.cache import RenderCache
from bot.service.context import HandlerContext

DIFF_CHECK = "gitops-bot/diff"
VALIDATE_CHECK = "gitops-bot/validate"
STICKY_KEY = "sticky"

_CACHE = RenderCache(max_entries=4096)
log = logging.getLogger(__name__)


def mask_key(secret: bytes | None, installation_id: int | None) -> bytes:
    """Return the keyed-hash key that masks Secret values: stable per installation, never shown."""
    base = secret or b"gitops-bot"
    return hmac.new(base, f"gitops-bot diff mask {installation_id}".encode(), hashlib.sha256).digest()


def _installation_id(ctx: HandlerContext) -> int | None:
    value = getattr(ctx.repos, "installation_id", None)
    return int(value) if isinstance(value, int) else None


def umbrella_summary(result: CheckResult) -> tuple[Literal["success", "failure"], str, str]:
    """Return (conclusion, title, summary) of the ``gitops-bot`` check from the whole report."""
    findings = result.report.findings
    errors = sum(1 for f in findings if f.severity is Severity.ERROR)
    warnings = sum(1 for f in findings if f.severity is Severity.WARNING)
    changes = result.report.changes
    targets = {(c.env, c.cluster) for c in changes}
    conclusion: Literal["success", "failure"] = "failure" if errors else "success"
    if errors:
        title = f"Blocked: {errors} error(s) to fix"
    elif warnings:
        title = f"Ready for review, {warnings} warning(s)"
    else:
        title = "Ready for review"
    lines = [
        "| Check | Result |",
        "| --- | --- |",
        f"| `{DIFF_CHECK}` | {len(changes)} object change(s) on {len(targets)} cluster(s) |",
        f"| `{VALIDATE_CHECK}` | {errors} error(s), {warnings} warning(s) |",
        "",
        "Approvals and signatures report in `gitops-bot/approvals` and `gitops-bot/signatures`.",
    ]
    if errors:
        lines += ["", "Fix the errors annotated on the files, push, and the checks run again."]
    return conclusion, title, "\n".join(lines)


async def build_and_post(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, pr: dict[str, Any]
) -> tuple[CheckResult, Path]:
    """Run every pull-request check for ``pr`` and post the results (safe to run twice).

    Returns the result and the mirror holding the PR's head, for what the handler does next
    (approvals on the rendered dangers, self-service; :func:`handlers.pull_request.check_pull_request`).
    """
    number = int(pr["number"])
    head_sha = str(pr["head"]["sha"])
    base_sha = str(pr["base"]["sha"])
    git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/pull/{number}/head"])
    secret = getattr(ctx.settings, "webhook_secret", None)
    key = mask_key(secret if isinstance(secret, bytes) else None, _installation_id(ctx))
    result = await asyncio.to_thread(
        build_check, git_dir, base_sha, head_sha, checkers=PR_CHECKERS, cache=_CACHE, secret_key=key
    )
    await post_results(gh, ctx, repo=repo, number=number, result=result)
    return result, git_dir


async def post_results(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, number: int, result: CheckResult
) -> None:
    """Write the three check runs (one listing of the head's runs) and the sticky comment for ``result``."""
    await write_check_runs(
        gh,
        repo,
        result.head_sha,
        result_check_runs(result, external_id=f"{repo}#{number}"),
        writes=ctx.writes,
    )
    await upsert_comment_parts(
        gh, repo, number, STICKY_KEY, result.comment_parts(), writes=ctx.writes, bot_login=ctx.bot_login
    )


def _masked_run(run: CheckRun, masker: Masker) -> CheckRun:
    return dataclasses.replace(
        run,
        title=masker.text(run.title),
        summary=masker.text(run.summary),
        text=masker.text(run.text) if run.text else run.text,
        annotations=[masker.value(dict(a)) for a in run.annotations],
    )


def result_check_runs(result: CheckResult, *, external_id: str) -> list[CheckRun]:
    """Return the ``gitops-bot/diff``, ``gitops-bot/validate`` and ``gitops-bot`` runs for ``result``, masked.

    The same runs for a pull request's head and for a merge group's head (:mod:`handlers.merge_group`).
    """
    head_sha = result.head_sha
    findings: list[Finding] = list(result.report.findings)
    title, summary, text = diff_check_output(result.diff)
    v_title, v_summary = validation_summary(findings)
    conclusion, u_title, u_summary = umbrella_summary(result)
    runs = [
        CheckRun(
            name=DIFF_CHECK, head_sha=head_sha, title=title, summary=summary, text=text, conclusion="neutral"
        ),
        CheckRun(
            name=VALIDATE_CHECK,
            head_sha=head_sha,
            title=v_title,
            summary=v_summary,
            conclusion="failure" if result.report.blocking else "success",
            annotations=annotations_from_findings(
                f for f in findings if f.path and not f.path.startswith(("(", "commit:"))
            ),
        ),
        CheckRun(
            name=CHECK_NAME,
            head_sha=head_sha,
            title=u_title,
            summary=u_summary,
            conclusion=conclusion,
            external_id=external_id,
        ),
    ]
    return [_masked_run(run, result.masker) for run in runs]


async def self_service(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, pr: dict[str, Any], result: CheckResult
) -> bool:
    """Approve and merge a low-risk request when the base config opts in (``self_service``).

    Only for an open PR whose head is still the checked sha, not opened by the bot itself, whose
    author has write permission on the repository (a fork author or reader gets a review);
    the merge names the sha, so a push in between makes GitHub refuse it (409) and nothing
    merges. Returns True when the bot merged.
    """
    decision = result.self_service
    if decision is None or not decision.eligible:
        return False
    user = pr.get("user") or {}
    if pr.get("state") != "open" or user.get("login") == ctx.bot_login or user.get("type") == "Bot":
        return False
    number = int(pr["number"])
    if not await _may_write(gh, repo, str(user.get("login") or "")):
        log.info("self-service skipped on %s#%s: its author has no write permission here", repo, number)
        return False  # a fork author (or reader) gets a review, never the bot's approval
    reasons = "; ".join(decision.reasons)
    await gh.post(
        f"/repos/{repo}/pulls/{number}/reviews",
        data={
            "commit_id": result.head_sha,
            "event": "APPROVE",
            "body": f"Self-service: {reasons}. Approved and merged by gitops-bot "
            "(`self_service` in the base config).",
        },
    )
    try:
        await gh.put(
            f"/repos/{repo}/pulls/{number}/merge",
            data={"sha": result.head_sha, "merge_method": "merge"},
        )
    except gidgethub.BadRequest as exc:  # 405 not mergeable, 409 head moved: a person takes over
        log.info("self-service merge of %s#%s refused: %s", repo, number, exc.status_code)
        return False
    return True


async def _may_write(gh: gidgethub.abc.GitHubAPI, repo: str, login: str) -> bool:
    """Whether ``login`` has write, maintain or admin permission on ``repo`` (GitHub's answer)."""
    if not login:
        return False
    try:
        data = await gh.getitem(f"/repos/{repo}/collaborators/{login}/permission")
    except gidgethub.BadRequest:
        return False
    return data.get("permission") in {"write", "admin"}  # maintain and custom roles on write read "write"


async def rendered_env_diff(git_dir: Path, base: str, head: str, env: str) -> str:
    """Return the rendered diff of ``base..head`` as markdown for a promotion PR into ``env``.

    Objects rendered for ``env`` come first; when the change touches no target of that
    environment (a cluster request reconciled by the hub, say), every changed object is shown.
    """
    result = await asyncio.to_thread(
        build_check,
        git_dir,
        base,
        head,
        checkers=[],
        cache=_CACHE,
        secret_key=mask_key(None, None),
    )
    changes = [c for c in result.diff.changes if c.env == env] or list(result.diff.changes)
    shown = replace(result.diff, changes=changes)
    parts = diff_comment_parts(shown, base_sha=result.base_sha, head_sha=result.head_sha, limit=40_000)
    body = result.masker.text(parts[0]) if parts else "No rendered object changes."
    return "\n".join(line for line in body.splitlines() if not line.startswith("<!-- gitops-bot:"))
