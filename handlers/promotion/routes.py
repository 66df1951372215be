"""Webhook routes of promotion: which events re-evaluate which promotion PRs."""

from __future__ import annotations

from typing import Any

import gidgethub.abc
import gidgethub.routing
import gidgethub.sansio

from bot.domain.config import ConfigError
from bot.domain.labels import HOLD_LABEL, HOLD_MARKER
from bot.domain.promotion import decide, plan
from bot.domain.promotion.decide import HoldChange, Standing
from bot.github.facts import GitHubFacts
from bot.service.context import HandlerContext
from bot.service.records import pr_standing, set_held
from bot.service.repos import load_config
from handlers.promotion import facts, flow, writes
from handlers.promotion.outcome import CHECK_NAME

router = gidgethub.routing.Router()


def _repo(event: gidgethub.sansio.Event) -> str:
    return str(event.data["repository"]["full_name"])


async def evaluate_for_sha(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, sha: str, context: str | None = None
) -> None:
    """Re-evaluate open promotion PRs whose source commit is ``sha``; roll back on red.

    When ``context`` (a status context or check run name) is a configured health context,
    promotions whose source commit ``sha`` includes on the same environment branch are
    re-evaluated too. Most statuses are about feature branches: the config and the mirror are
    read only when a promotion PR may be concerned.
    """
    others: list[tuple[dict[str, Any], plan.History]] = []
    for p, _, record in await facts.open_promotions(gh, ctx, repo):
        h = record.history
        assert h is not None
        if h.source_sha == sha:
            await flow.safe(flow.evaluate_and_carry_on(gh, ctx, repo=repo, pr=p))
        else:
            others.append((p, h))
    if others and context:
        chain, _ = await facts.chain(gh, ctx, repo)
        related = []
        for p, h in others:
            env = chain.by_name(h.source_env)
            if env is not None and context in env.gates.contexts:
                related.append((p, h, env))
        if related:
            git_dir = await ctx.repos.git_dir(
                repo, refs=sorted({f"refs/heads/{e.branch}" for _, _, e in related})
            )
            for p, h, env in related:
                if facts.on_branch_after(git_dir, env.branch, h.source_sha, sha):
                    await flow.safe(flow.evaluate_and_carry_on(gh, ctx, repo=repo, pr=p))
    # rollback_on_red: is sha the merge commit of a recently merged promotion PR?
    recent = await facts.listing(
        gh, f"/repos/{repo}/pulls?state=closed&sort=updated&direction=desc&per_page=30", limit=30
    )
    for p in recent:
        if p.get("merge_commit_sha") == sha and p.get("merged_at"):
            await flow.safe(flow.rollback_if_red(gh, ctx, repo, p))


@router.register("pull_request", action="closed")
async def on_pull_request_closed(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext
) -> None:
    """A PR merged into an environment branch starts its promotion; a closed promotion frees the queue."""
    pr = event.data["pull_request"]
    repo = _repo(event)
    standing, _ = await pr_standing(ctx, repo, pr)
    if pr.get("merged"):
        step = flow.promote_and_carry_on(
            gh, ctx, repo=repo, source_pr=int(pr["number"]), target_env=None, explicit=False, pr=pr
        )
        await flow.safe(step)
        await flow.safe(flow.rollback_if_red(gh, ctx, repo, pr))
    if standing in (Standing.PROMOTION, Standing.LOST):
        for done in await flow.refresh_queue(gh, ctx, repo, str(pr["base"]["ref"])):
            await flow.carry_on(gh, ctx, repo, done)


async def _hold_label_changed(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, data: dict[str, Any]
) -> None:
    """Keep the hold the bot's state: adding the label holds; removing it needs ``/unhold``'s permission."""
    pr = data["pull_request"]
    sender = str((data.get("sender") or {}).get("login") or "")
    number = int(pr["number"])
    may_release, role = False, "none"
    if data["action"] == "unlabeled" and sender and sender != ctx.bot_login:
        try:
            base = f"refs/heads/{pr['base']['ref']}"
            teams = (await load_config(ctx.repos, repo, base)).get("commands", {}).get("allowed_teams") or []
        except ConfigError:
            teams = []
        may_release, role = await GitHubFacts(gh, ctx.cache).may_command(repo, sender, teams)
    change = decide.hold_label_change(
        action=str(data["action"]), sender=sender, bot_login=ctx.bot_login, may_release=may_release
    )
    if change is HoldChange.HOLD:
        await set_held(ctx, repo, number, True)
    elif change is HoldChange.RELEASE:
        await set_held(ctx, repo, number, False)
    elif change is HoldChange.RESTORE:
        await set_held(ctx, repo, number, True)
        await gh.post(f"/repos/{repo}/issues/{number}/labels", data={"labels": [HOLD_LABEL]})
        pr["labels"] = [*(pr.get("labels") or []), {"name": HOLD_LABEL}]
        text = decide.hold_restored_text(sender, HOLD_LABEL, role)
        await writes.comment(gh, ctx, repo, number, HOLD_MARKER, f"{HOLD_MARKER}\n{text}")


@router.register("pull_request", action="opened")
@router.register("pull_request", action="reopened")
@router.register("pull_request", action="synchronize")
@router.register("pull_request", action="labeled")
@router.register("pull_request", action="unlabeled")
@router.register("pull_request", action="edited")
async def on_promotion_pr_changed(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext
) -> None:
    """Re-evaluate a promotion PR's gates when it opens, moves, is edited or its labels change."""
    pr = dict(event.data["pull_request"])
    repo = _repo(event)
    if (
        event.data.get("action") in ("labeled", "unlabeled")
        and (event.data.get("label") or {}).get("name") == HOLD_LABEL
    ):
        await _hold_label_changed(gh, ctx, repo, {**event.data, "pull_request": pr})
    standing, _ = await pr_standing(ctx, repo, pr)
    if standing in (Standing.PROMOTION, Standing.LOST):
        await flow.safe(flow.evaluate_and_carry_on(gh, ctx, repo=repo, pr=pr))


@router.register("pull_request_review", action="submitted")
@router.register("pull_request_review", action="dismissed")
async def on_review(event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext) -> None:
    """Approvals are a gate: re-evaluate the promotion PR on every review."""
    pr = event.data["pull_request"]
    repo = _repo(event)
    standing, _ = await pr_standing(ctx, repo, pr)
    if standing not in (Standing.PROMOTION, Standing.LOST):
        return
    fresh = await facts.get(gh, f"/repos/{repo}/pulls/{int(pr['number'])}")
    await flow.safe(flow.evaluate_and_carry_on(gh, ctx, repo=repo, pr=fresh))


@router.register("status")
async def on_status(event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext) -> None:
    """A commit status may be an environment's health signal."""
    data = event.data
    await flow.safe(evaluate_for_sha(gh, ctx, _repo(event), str(data["sha"]), str(data.get("context") or "")))


@router.register("check_run", action="completed")
async def on_check_run(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext
) -> None:
    """A finished check run may be a health signal (our own promotion check is ignored).

    The bot's own PR checks are no health signal either: they are skipped (each would cost two
    pull-request listings) unless they sit on a promotion PR, where finishing may unblock a
    merge that branch protection refused.
    """
    run = event.data["check_run"]
    if run.get("name") == CHECK_NAME:
        return
    app = (run.get("app") or {}).get("slug") or ""
    on_promotion = any(
        plan.parse_branch(str((p.get("head") or {}).get("ref") or "")) for p in run.get("pull_requests") or []
    )
    if app and f"{app}[bot]" == ctx.bot_login and not on_promotion:
        return
    await flow.safe(evaluate_for_sha(gh, ctx, _repo(event), str(run["head_sha"]), str(run.get("name") or "")))


@router.register("check_suite", action="completed")
async def on_check_suite(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext
) -> None:
    """A finished check suite may carry health signals."""
    suite = event.data["check_suite"]
    app = (suite.get("app") or {}).get("slug") or ""
    if app and f"{app}[bot]" == ctx.bot_login:
        return
    await flow.safe(evaluate_for_sha(gh, ctx, _repo(event), str(suite["head_sha"])))
