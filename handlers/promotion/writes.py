"""Apply: every write promotion makes to GitHub and to the bot's store, each idempotent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gidgethub
import gidgethub.abc

from bot.domain.labels import LOST_MARKER
from bot.domain.promotion import plan
from bot.domain.promotion.decide import Record, with_gates
from bot.domain.promotion.gates import GateReport, GateState
from bot.github.checks import CheckRun, write_check_runs
from bot.github.comments import find_bot_comment, upsert_bot_comment
from bot.service.context import HandlerContext
from bot.service.records import write_record
from handlers.promotion.facts import html, prs_for_head
from handlers.promotion.outcome import CHECK_NAME, Stop


async def push_branch(
    ctx: HandlerContext, repo: str, record: Record, sha: str, current: str, made: Sequence[str] = ()
) -> Record:
    """Point the bot's branch at ``sha`` (recording it and ``made``, the commits it created, first).

    Always a force push: ``gitops-bot/...`` branches belong to the bot, and a branch left by an
    interrupted earlier run must be replaced, not refused. The record is written before the
    push, so the push's own webhook already finds the head trusted.
    """
    record = record.with_push(sha, made)
    await write_record(ctx, repo, record)
    if current != sha:
        await ctx.repos.push(repo, [f"{sha}:refs/heads/{record.branch}"], force=True)
    return record


async def open_or_update_pr(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    repo: str,
    record: Record,
    *,
    title: str,
    body: str,
    labels: Sequence[str],
    existing: dict[str, Any] | None,
) -> dict[str, Any]:
    """Create the PR, or update title/body of ``existing`` only when they differ; record its number."""
    branch, base = record.branch, record.base
    if existing is not None:
        patch: dict[str, Any] = {}
        if existing.get("title") != title:
            patch["title"] = title
        if existing.get("body") != body:
            patch["body"] = body
        if existing.get("state") != "open":
            patch["state"] = "open"
        if patch:
            await gh.patch(f"/repos/{repo}/pulls/{existing['number']}", data=patch)
            existing = {**existing, **patch}
        pr = existing
    else:
        try:
            pr = await gh.post(
                f"/repos/{repo}/pulls",
                data={
                    "title": title,
                    "head": branch,
                    "base": base,
                    "body": body,
                    "maintainer_can_modify": False,
                },
            )
        except gidgethub.BadRequest as exc:
            # 422 "A pull request already exists": another worker won the race; use theirs
            mine = await prs_for_head(gh, repo, branch, base, ctx.bot_login)
            found = [p for p in mine if p.get("state") == "open"]
            if not found:
                raise Stop(
                    f"GitHub refused to open the pull request from `{branch}` to `{base}` "
                    f"(is a pull request someone else opened from it still open?): {exc}"
                ) from exc
            pr = found[0]
    if record.number != int(pr["number"]):
        await write_record(ctx, repo, record.with_number(int(pr["number"])))
    have = {str(lbl.get("name")) for lbl in pr.get("labels") or [] if isinstance(lbl, Mapping)}
    missing = [lbl for lbl in labels if lbl not in have]
    if missing:
        await gh.post(f"/repos/{repo}/issues/{pr['number']}/labels", data={"labels": missing})
    return {**pr, "labels": [*(pr.get("labels") or []), *({"name": name} for name in missing)]}


async def comment(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, number: int, tag: str, body: str
) -> str | None:
    """Create or update the bot's comment tagged ``tag``; return its URL."""
    made = await upsert_bot_comment(gh, repo, number, tag, body, bot_login=ctx.bot_login)
    return str(made.get("html_url") or "") or None


async def update_comment(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, number: int, tag: str, body: str
) -> None:
    """Update the bot's comment tagged ``tag`` when there is one (never one a person wrote)."""
    if await find_bot_comment(gh, repo, number, tag, bot_login=ctx.bot_login) is not None:
        await upsert_bot_comment(gh, repo, number, tag, body, bot_login=ctx.bot_login)


async def publish(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    repo: str,
    pr: dict[str, Any],
    head_sha: str,
    history: plan.History,
    report: GateReport,
) -> None:
    """Create or update the check run and the checklist in the body, only when they changed."""
    title = report.summary_line()
    summary = (
        f"Promotion of [#{history.origin_pr}]({html(repo, history.origin_pr)}) from `{history.source_env}` "
        f"to `{history.target_env}` (source commit `{plan.short(history.source_sha)}`).\n\n"
        f"{report.checklist()}"
    )
    if report.recheck_at is not None:
        summary += f"\n\nThe bot checks again at {report.recheck_at.strftime('%Y-%m-%d %H:%M UTC')}."
    if report.state is GateState.PENDING:
        run = CheckRun(CHECK_NAME, head_sha, title, summary, status="in_progress")
    else:
        run = CheckRun(
            CHECK_NAME, head_sha, title, summary, conclusion="success" if report.passed else "failure"
        )
    # a completed run is re-created (not re-opened) when its gates go back to pending
    await write_check_runs(gh, repo, head_sha, [run], writes=ctx.writes)
    await set_body(gh, repo, pr, with_gates(str(pr.get("body") or ""), report.task_list()))


async def set_body(gh: gidgethub.abc.GitHubAPI, repo: str, pr: dict[str, Any], body: str) -> None:
    if body != str(pr.get("body") or ""):
        await gh.patch(f"/repos/{repo}/pulls/{pr['number']}", data={"body": body})
        pr["body"] = body


async def publish_lost(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, pr: dict[str, Any], why: str
) -> None:
    """A promotion someone else pushed to: a neutral check run and the bot's comment saying why."""
    head_sha = str(pr["head"]["sha"])
    run = CheckRun(
        CHECK_NAME,
        head_sha,
        "Not a promotion any more: reviewed like any pull request",
        why,
        conclusion="neutral",
    )
    await write_check_runs(gh, repo, head_sha, [run], writes=ctx.writes)
    tag = LOST_MARKER
    await comment(gh, ctx, repo, int(pr["number"]), tag, f"{tag}\n### ✋ Not merged by the bot\n\n{why}")


async def merge(
    gh: gidgethub.abc.GitHubAPI, repo: str, number: int, head_sha: str, method: str
) -> str | None:
    """Merge PR ``number`` at ``head_sha``; None when merged, else why GitHub refused."""
    try:
        await gh.put(f"/repos/{repo}/pulls/{number}/merge", data={"sha": head_sha, "merge_method": method})
    except gidgethub.HTTPException as exc:
        # 405 not mergeable (branch protection, required checks), 409 head moved: try again later
        return str(exc)
    return None
