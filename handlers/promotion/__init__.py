"""Promotion across environment branches: open, gate, merge and roll back promotion PRs.

A package shaped fetch → decide → apply:

- :mod:`.facts` fetches (config from the default branch, PRs, health, approvals, the bot's
  records of what it made);
- :mod:`bot.domain.promotion` decides (pure functions: where a change goes, which PR to
  update, whether to keep a branch, the gates, the rollback-on-red window, the hold);
- :mod:`.writes` applies (branch pushes recorded in the bot's store, PRs, check runs, the
  bot's own comments), every write idempotent;
- :mod:`.flow` strings them together (a merge's consequences run as a loop) and
  :mod:`.routes` maps webhooks onto it.

A PR is a promotion only by the bot's own record (:mod:`bot.service.records`): opened by this App,
its head a commit the bot pushed. Someone else's push turns it into an ordinary PR that
people review and merge. State machine of one promotion PR
(``gitops-bot/promote/<env>/<short sha>``)::

    merged into env N ──► branch pushed ──► PR open ──► gates pending ⇄ held / frozen / waiting
         │                                                 │ all hold (+ auto_merge)
         └─ conflicts ──► comment on source PR             ▼
            (/promote <env> retries)                   merged into env N+1 ──► next promotion

The four public coroutines below are what ``/promote``, ``/rollback`` and the reconciler call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import gidgethub.abc

from bot.domain.promotion import plan
from bot.health.statuses import parse_time
from bot.service.context import HandlerContext
from handlers.promotion import facts, flow
from handlers.promotion.outcome import CHECK_NAME, PromotionOutcome
from handlers.promotion.routes import (
    on_check_run,
    on_check_suite,
    on_promotion_pr_changed,
    on_pull_request_closed,
    on_review,
    on_status,
    router,
)

__all__ = [
    "CHECK_NAME",
    "PromotionOutcome",
    "evaluate_promotion",
    "on_check_run",
    "on_check_suite",
    "on_promotion_pr_changed",
    "on_pull_request_closed",
    "on_review",
    "on_status",
    "promote_pr",
    "reconcile_promotions",
    "rollback_pr",
    "router",
]


async def promote_pr(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    *,
    repo: str,
    source_pr: int,
    target_env: str | None = None,
) -> PromotionOutcome:
    """Carry merged PR ``source_pr`` to the next environment (or ``target_env``, which must be it).

    Opens or updates the promotion PR and evaluates its gates; a closed promotion PR is
    reopened (this is the explicit ``/promote``). Conflicts produce a comment on the source
    PR and ``ok=False``. On an open promotion PR it re-evaluates that PR's gates now. Safe to
    run any number of times.
    """
    step = flow.promote_and_carry_on(
        gh, ctx, repo=repo, source_pr=source_pr, target_env=target_env, explicit=True
    )
    return await flow.answer(step, f"promoting #{source_pr}")


async def evaluate_promotion(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, promotion_pr: int
) -> PromotionOutcome:
    """Re-evaluate the gates of one promotion PR, publish the check run, merge when all hold."""

    async def step() -> PromotionOutcome:
        pr = await facts.get(gh, f"/repos/{repo}/pulls/{promotion_pr}")
        return await flow.evaluate_and_carry_on(gh, ctx, repo=repo, pr=pr)

    return await flow.answer(step(), f"evaluating #{promotion_pr}")


async def rollback_pr(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, pr_number: int, reason: str
) -> PromotionOutcome:
    """Open (or find) a PR that reverts merged PR ``pr_number`` on the branch it merged into."""
    step = flow.rollback(gh, ctx, repo=repo, pr_number=pr_number, reason=reason)
    return await flow.answer(step, f"rolling back #{pr_number}")


async def reconcile_promotions(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str
) -> list[PromotionOutcome]:
    """Re-evaluate open promotion PRs and open the promotions that merged PRs are missing.

    Looks at the 50 most recently updated closed PRs of each environment branch that merged
    within ``promotion.reconcile_lookback`` (default 3d), so a lost webhook delays a promotion
    until the next run but never drops it. Also applies ``rollback_on_red`` to recently merged
    promotions. Returns one outcome per action taken or gate evaluated (nothing for PRs that
    are already promoted).
    """
    try:
        chain, _ = await facts.chain(gh, ctx, repo)
    except flow.Stop as stop:
        return [stop.outcome]
    outcomes: list[PromotionOutcome] = []
    since = datetime.now(UTC) - chain.settings.reconcile_lookback
    for env in chain.environments:
        nxt = chain.next_after(env)
        closed = await facts.listing(
            gh,
            f"/repos/{repo}/pulls?state=closed&base={quote(env.branch, safe='')}"
            "&sort=updated&direction=desc&per_page=50",
            limit=50,
        )
        merged = sorted(
            (p for p in closed if (t := parse_time(p.get("merged_at"))) is not None and t >= since),
            key=lambda p: str(p["merged_at"]),
        )
        if nxt is not None and merged:
            known = {
                str((p.get("head") or {}).get("ref"))
                for p in await facts.listing(
                    gh,
                    f"/repos/{repo}/pulls?state=all&base={quote(nxt.branch, safe='')}"
                    "&sort=created&direction=desc&per_page=100",
                    limit=200,
                )
                if (p.get("user") or {}).get("login") == ctx.bot_login
            }
            for p in merged:
                if plan.branch_name(nxt.name, str(p.get("merge_commit_sha"))) in known:
                    continue
                step = flow.promote_and_carry_on(
                    gh, ctx, repo=repo, source_pr=int(p["number"]), target_env=None, explicit=False, pr=p
                )
                outcomes.append(await flow.answer(step, f"promoting #{p['number']}"))
        for p in merged:
            red = await flow.answer(
                flow.rollback_if_red(gh, ctx, repo, p), f"checking #{p['number']} for red health"
            )
            if red is not None:
                outcomes.append(red)
    for p, _, _ in await facts.open_promotions(gh, ctx, repo):
        step = flow.evaluate_and_carry_on(gh, ctx, repo=repo, pr=p)
        outcomes.append(await flow.answer(step, f"evaluating #{p['number']}"))
    return outcomes
