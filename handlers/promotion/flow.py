"""The flow: promote, evaluate, merge and roll back, as fetch → decide → apply steps.

A merge leads to more work (promote the merged PR onward, rebuild the queue into its
environment, which may merge again): :func:`carry_on` runs that as a loop over a work list,
not as recursion.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import gidgethub
import gidgethub.abc

from bot.domain.config import CONFIG_PATH
from bot.domain.labels import CONFLICT_MARKER, HOLD_LABEL, PROMOTION_LABEL, RED_MARKER, ROLLBACK_LABEL
from bot.domain.promotion import decide, plan
from bot.domain.promotion.decide import BranchAction, Record, Standing
from bot.domain.promotion.gates import GateFacts, GateState, evaluate_gates
from bot.git import rewrite
from bot.git.files import GitError, rev_parse
from bot.health.statuses import parse_time
from bot.service.context import HandlerContext
from bot.service.records import is_held, pr_standing, read_record, set_held, write_record
from handlers.promotion import facts, writes
from handlers.promotion.outcome import PromotionOutcome, Stop

__all__ = ["Done", "PromotionOutcome", "Stop"]

log = logging.getLogger(__name__)

MAX_MERGES = 50  # merges one event may lead to (a chain is a handful of environments)
T = TypeVar("T")


@dataclass
class Done:
    """A step's outcome, and the promotion PR it merged (fresh from GitHub) if it merged one."""

    outcome: PromotionOutcome
    merged: dict[str, Any] | None = None
    base: str = ""


# --- promote -------------------------------------------------------------------------------


async def promote(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    *,
    repo: str,
    source_pr: int,
    target_env: str | None,
    explicit: bool,
    pr: dict[str, Any] | None = None,
) -> Done:
    """Open or update the promotion of merged PR ``source_pr`` and evaluate it (no follow-ups)."""
    chain, _ = await facts.chain(gh, ctx, repo)
    if pr is None:
        pr = await facts.get(gh, f"/repos/{repo}/pulls/{source_pr}")
    assert pr is not None
    standing, record = await pr_standing(ctx, repo, pr)
    if not pr.get("merged_at") or not pr.get("merge_commit_sha"):
        if pr.get("state") == "open" and standing in (Standing.PROMOTION, Standing.LOST):
            return await evaluate(gh, ctx, repo=repo, pr=pr)  # `/promote` on a promotion PR: check now
        raise Stop(f"#{source_pr} is not merged yet; it is promoted after it merges.")
    base = str(pr["base"]["ref"])
    chosen = decide.choose_target(
        chain,
        source_pr=source_pr,
        base=base,
        target_env=target_env,
        is_rollback=standing is Standing.ROLLBACK,
    )
    if isinstance(chosen, decide.Refusal):
        raise Stop.of(chosen)
    source, nxt = chosen

    merge_sha = str(pr["merge_commit_sha"])
    branch = plan.branch_name(nxt.name, merge_sha)
    existing_all = await facts.prs_for_head(gh, repo, branch, nxt.branch, ctx.bot_login)
    found = decide.existing_pr(
        facts.pr_refs(repo, existing_all), source_pr=source_pr, env=nxt.name, explicit=explicit
    )
    if isinstance(found, decide.Refusal):
        raise Stop.of(found)
    existing = next((p for p in existing_all if found is not None and p["number"] == found.number), None)

    git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/heads/{nxt.branch}", f"refs/heads/{source.branch}"])
    onto = f"refs/heads/{nxt.branch}"
    current = facts.branch_head(git_dir, branch, existing)
    commits: tuple[str, ...] = (merge_sha,)
    if chain.settings.strategy == "merge":
        message = f"Promote {source.branch} to {nxt.branch} (#{source_pr})\n"
        result = rewrite.merge(git_dir, merge_sha, onto, message=message)
    else:
        commits = await facts.merged_commits(gh, repo, git_dir, pr, merge_sha)
        result = rewrite.cherry_pick_range(
            git_dir, list(commits), onto, trailer=f"Promoted from #{source_pr} ({source.name}) by gitops-bot."
        )
    mine = await read_record(ctx, repo, branch) or Record("promotion", branch, nxt.branch)
    open_pr = existing is not None and existing.get("state") == "open"
    action = decide.branch_action(
        current=current,
        built=result.sha,
        trusted=bool(current) and current in mine.pushed,
        open_pr=open_pr,
        up_to_date=bool(current) and facts.contains(git_dir, current, onto),
    )
    conflict_tag = CONFLICT_MARKER.format(env=nxt.name)
    if action is BranchAction.CONFLICT:
        body = plan.conflict_comment(
            env=nxt,
            onto_branch=nxt.branch,
            source_pr=source_pr,
            source_sha=merge_sha,
            paths=result.conflicts,
            strategy=chain.settings.strategy,
            merge_commit=len(rewrite.commit_info(git_dir, merge_sha).parents) > 1,
        )
        await writes.comment(gh, ctx, repo, source_pr, conflict_tag, body)
        paths = ", ".join(f"`{p}`" for p in result.conflicts)
        return Done(
            PromotionOutcome(
                False,
                f"#{source_pr} does not apply to `{nxt.branch}`: conflicts in {paths}. "
                f"Resolve by hand or fix `{nxt.branch}`, then comment `/promote {nxt.name}`.",
            )
        )
    if action is BranchAction.KEEP and result.sha is None:
        assert existing is not None  # someone resolved it by hand on the promotion branch: keep their work
        url = facts.pr_url(repo, existing)
        evaluated = await evaluate(gh, ctx, repo=repo, pr=existing)
        message = f"Promotion to `{nxt.name}` is open (resolved by hand).\n\n{evaluated.outcome.message}"
        return Done(PromotionOutcome(True, message, url), evaluated.merged, evaluated.base)
    if result.empty and existing is None:
        return Done(
            PromotionOutcome(
                True, f"`{nxt.branch}` already has the change of #{source_pr}; nothing to promote."
            )
        )

    history = plan.next_history(
        chain,
        source,
        nxt,
        merged_pr=source_pr,
        merged_title=str(pr.get("title") or ""),
        merged_sha=merge_sha,
        previous=record.history if record is not None and standing is Standing.PROMOTION else None,
        commits=commits,
        merged_at=str(pr.get("merged_at") or ""),
    )
    mine = mine.with_history(history)
    head_sha = current
    if action is BranchAction.PUSH:
        assert result.sha is not None
        made = rewrite.created(git_dir, result.sha, onto, merge_sha)
        mine = await writes.push_branch(ctx, repo, mine, result.sha, current, made)
        head_sha = result.sha
    else:
        await write_record(ctx, repo, mine)
    diff_md = await _diff(ctx, repo, source_pr, git_dir, onto, head_sha, nxt.name)
    kept = decide.gates_block(str((existing or {}).get("body") or ""))
    body = decide.with_gates(
        plan.pr_body(history, repo=repo, diff_markdown=diff_md, checklist="", auto_merge=nxt.auto_merge),
        kept or "_Evaluating gates…_",
    )
    title = plan.pr_title(history.origin_pr, nxt.name, history.origin_title)
    labels = [PROMOTION_LABEL, *chain.settings.labels]
    held = existing is None and (_labelled(pr, HOLD_LABEL) or await is_held(ctx, repo, source_pr))
    if held:
        labels.append(HOLD_LABEL)  # a held change stays held on its way; `/unhold` there releases it
    promo = await writes.open_or_update_pr(
        gh, ctx, repo, mine, title=title, body=body, labels=labels, existing=existing
    )
    if held:
        await set_held(ctx, repo, int(promo["number"]), True)
    url = facts.pr_url(repo, promo)
    await writes.update_comment(gh, ctx, repo, source_pr, conflict_tag, plan.resolved_comment(nxt, url))
    promo["head"] = {**(promo.get("head") or {}), "ref": branch, "sha": head_sha}
    evaluated = await evaluate(gh, ctx, repo=repo, pr=promo)
    message = f"Promotion of #{source_pr} to `{nxt.name}`: {url}\n\n{evaluated.outcome.message}"
    return Done(PromotionOutcome(True, message, url), evaluated.merged, evaluated.base)


def _labelled(pr: dict[str, Any], label: str) -> bool:
    return label in {str(lbl.get("name")) for lbl in pr.get("labels") or []}


async def _diff(
    ctx: HandlerContext, repo: str, source_pr: int, git_dir: Path, onto: str, head: str, env: str
) -> str:
    """The rendered change for the PR body; without a renderer, or when it fails, a pointer."""
    if ctx.diff_renderer is None:
        return "_The rendered diff is in this PR's checks; comment `/diff` to see it again._"
    try:
        return await ctx.diff_renderer(git_dir, onto, head, env)
    except Exception as exc:  # a broken renderer must not stop promotion; say so in the body
        log.warning("promotion diff failed for %s#%s: %s", repo, source_pr, type(exc).__name__)
        return f"_The rendered diff could not be produced ({type(exc).__name__}); run `/diff` on this PR._"


# --- evaluate ------------------------------------------------------------------------------

_EVALUATING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
"""One lock per promotion PR, per event loop (a lock belongs to the loop it first waited on)."""


async def evaluate(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, pr: dict[str, Any]
) -> Done:
    """Evaluate one promotion PR, one evaluation at a time per PR in this process.

    The worker (several deliveries at once) and the reconciler may evaluate the same PR
    together; unserialised, both saw no check run and created one each. Whoever had to wait
    re-reads the PR, which the other may just have merged.
    """
    locks = _EVALUATING.setdefault(asyncio.get_running_loop(), {})
    lock = locks.setdefault(f"{repo}#{pr['number']}", asyncio.Lock())
    waited = lock.locked()
    async with lock:
        if waited:
            pr = await facts.get(gh, f"/repos/{repo}/pulls/{pr['number']}")
        return await _evaluate_now(gh, ctx, repo=repo, pr=pr)


async def _evaluate_now(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, pr: dict[str, Any]
) -> Done:
    number = int(pr["number"])
    standing, record = await pr_standing(ctx, repo, pr)
    history = record.history if record is not None else None
    if history is None or standing not in (Standing.PROMOTION, Standing.LOST):
        raise Stop(f"#{number} is not a promotion PR the bot opened.")
    url = facts.pr_url(repo, pr)
    closed = decide.closed_outcome(
        number=number, merged=bool(pr.get("merged_at")), closed=pr.get("state") == "closed", history=history
    )
    if closed is not None:
        return Done(PromotionOutcome(True, closed, url if pr.get("merged_at") else None))
    if standing is Standing.LOST:
        assert record is not None
        why = decide.lost_standing_text(str(pr["head"]["sha"]), record.pushed)
        await writes.publish_lost(gh, ctx, repo, pr, why)
        return Done(PromotionOutcome(False, f"#{number}: {why}", url))
    chain, config = await facts.chain(gh, ctx, repo)
    source, target = chain.by_name(history.source_env), chain.by_name(history.target_env)
    if source is None or target is None:
        raise Stop(
            f"#{number} promotes `{history.source_env}` to `{history.target_env}`, which are no longer both "
            f"configured environments ({', '.join(chain.names)}); close it or fix `{CONFIG_PATH}`."
        )
    head_sha = str(pr["head"]["sha"])
    health = await facts.health(gh, ctx, repo, source, history.source_sha)
    approvals = (
        await facts.approvals(gh, ctx, repo, pr, target.gates.approvals, config)
        if target.gates.approvals
        else ()
    )
    queue = await facts.queue(gh, ctx, repo, target)
    gate_facts = GateFacts(
        now=datetime.now(UTC),
        health=tuple(health),
        merged_at=parse_time(history.merged_at),
        approvals=approvals,
        held=_labelled(pr, HOLD_LABEL) or await is_held(ctx, repo, number),  # anyone may hold
        ahead=plan.in_flight_ahead(queue, number),
    )
    report = evaluate_gates(source, target, gate_facts, hold_label=HOLD_LABEL)
    await writes.publish(gh, ctx, repo, pr, head_sha, history, report)
    if report.passed and target.auto_merge:
        refused = await writes.merge(gh, repo, number, head_sha, chain.settings.merge_method)
        if refused is not None:
            msg = (
                f"All gates hold on #{number}, but GitHub did not merge it ({refused}). "
                "The bot tries again on the next event; check branch protection and required checks."
            )
            return Done(PromotionOutcome(False, msg, url))
        fresh = await facts.get(gh, f"/repos/{repo}/pulls/{number}")
        merged = f"All gates hold: merged #{number} into `{target.branch}`."
        return Done(PromotionOutcome(True, merged, url), fresh, target.branch)
    if report.passed:
        return Done(
            PromotionOutcome(
                True, f"All gates hold on #{number}; `{target.name}` waits for a person to merge it.", url
            )
        )
    return Done(
        PromotionOutcome(report.state is not GateState.FAIL, f"#{number}: {report.summary_line()}", url)
    )


# --- after a merge: a loop, not recursion --------------------------------------------------


async def refresh_queue(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, base: str) -> list[Done]:
    """After a promotion into ``base`` merged or closed, rebuild and re-evaluate the others.

    Each queued promotion branch is rebuilt on the new tip of ``base`` (same deterministic
    name) so the next one in line merges cleanly, then its gates are evaluated.
    """
    out = []
    for _, _, record in await facts.open_promotions(gh, ctx, repo, base):
        h = record.history
        assert h is not None
        done = await safe(
            promote(gh, ctx, repo=repo, source_pr=h.source_pr, target_env=h.target_env, explicit=False)
        )
        if isinstance(done, Done):
            out.append(done)
    return out


async def carry_on(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, first: Done
) -> PromotionOutcome:
    """Do what merges lead to: promote each merged PR onward and refresh the queue into its base.

    Those steps may merge more PRs; they go on the work list until none is left (at most
    :data:`MAX_MERGES`). The first outcome is returned, with the next promotion's URL.
    """
    outcome = first.outcome
    todo = deque([first] if first.merged is not None else [])
    merges = 0
    while todo and merges < MAX_MERGES:
        done = todo.popleft()
        merged = done.merged
        assert merged is not None
        merges += 1
        nxt = await safe(
            promote(
                gh,
                ctx,
                repo=repo,
                source_pr=int(merged["number"]),
                target_env=None,
                explicit=False,
                pr=merged,
            )
        )
        if isinstance(nxt, Done):
            if done is first and nxt.outcome.url:
                outcome = PromotionOutcome(
                    outcome.ok, f"{outcome.message} Next: {nxt.outcome.url}", outcome.url
                )
            if nxt.merged is not None:
                todo.append(nxt)
        todo.extend(d for d in await refresh_queue(gh, ctx, repo, done.base) if d.merged is not None)
    return outcome


async def promote_and_carry_on(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    *,
    repo: str,
    source_pr: int,
    target_env: str | None,
    explicit: bool,
    pr: dict[str, Any] | None = None,
) -> PromotionOutcome:
    done = await promote(
        gh, ctx, repo=repo, source_pr=source_pr, target_env=target_env, explicit=explicit, pr=pr
    )
    return await carry_on(gh, ctx, repo, done)


async def evaluate_and_carry_on(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, pr: dict[str, Any]
) -> PromotionOutcome:
    return await carry_on(gh, ctx, repo, await evaluate(gh, ctx, repo=repo, pr=pr))


# --- rollback ------------------------------------------------------------------------------


async def rollback(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, pr_number: int, reason: str
) -> PromotionOutcome:
    pr = await facts.get(gh, f"/repos/{repo}/pulls/{pr_number}")
    if not pr.get("merged_at") or not pr.get("merge_commit_sha"):
        raise Stop(f"#{pr_number} is not merged, so there is nothing to roll back; close it instead.")
    base = str(pr["base"]["ref"])
    sha = str(pr["merge_commit_sha"])
    try:
        chain, _ = await facts.chain(gh, ctx, repo)
        env = chain.by_branch(base)
    except Stop:
        env = None
    env_name = env.name if env else re.sub(r"[^A-Za-z0-9._-]+", "-", base)
    branch = plan.rollback_branch(env_name, sha)
    existing_all = await facts.prs_for_head(gh, repo, branch, base, ctx.bot_login)
    found = decide.existing_pr(
        facts.pr_refs(repo, existing_all), source_pr=pr_number, env=env_name, explicit=True, kind="rollback"
    )
    if isinstance(found, decide.Refusal):
        raise Stop.of(found)
    existing = next((p for p in existing_all if p.get("state") == "open"), None)
    git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/heads/{base}"])
    current = facts.branch_head(git_dir, branch, existing)
    title = f"Roll back #{pr_number} in {env_name}: {pr.get('title') or ''}".strip()
    if existing is not None and current:
        url = facts.pr_url(repo, existing)
        return PromotionOutcome(True, f"The rollback of #{pr_number} is open: {url}", url)
    commits = list(reversed(await facts.merged_commits(gh, repo, git_dir, pr, sha)))
    head = f"refs/heads/{base}"
    result = rewrite.RewriteResult(None)
    for c in commits:  # newest first
        result = rewrite.revert(git_dir, c, head, reason=f"Rollback of #{pr_number}: {reason}")
        if result.sha is None:
            paths = ", ".join(f"`{p}`" for p in result.conflicts)
            raise Stop(
                f"#{pr_number} cannot be reverted cleanly on `{base}`: later changes touch {paths}. "
                f"Revert by hand: `git revert -m 1 {sha}` on `{base}`, fix those files, and open a PR."
            )
        head = result.sha
    if result.sha is None or result.sha == rev_parse(git_dir, f"refs/heads/{base}"):
        raise Stop(f"`{base}` no longer has the change of #{pr_number}; nothing to roll back.", ok=True)
    mine = await read_record(ctx, repo, branch) or Record("rollback", branch, base, reverted=pr_number)
    made = rewrite.created(git_dir, result.sha, f"refs/heads/{base}")
    mine = await writes.push_branch(ctx, repo, mine, result.sha, current, made)
    body = plan.rollback_body(repo=repo, env=env_name, pr_number=pr_number, sha=sha, reason=reason)
    promo = await writes.open_or_update_pr(
        gh, ctx, repo, mine, title=title, body=body, labels=[ROLLBACK_LABEL], existing=existing
    )
    url = facts.pr_url(repo, promo)
    return PromotionOutcome(
        True, f"Opened the rollback of #{pr_number}: {url} (merge it to undo the change).", url
    )


async def rollback_if_red(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, pr: dict[str, Any]
) -> PromotionOutcome | None:
    """With ``rollback_on_red``: revert a merged promotion whose env turned red within its soak."""
    if not pr.get("merged_at") or not pr.get("merge_commit_sha"):
        return None
    standing, record = await pr_standing(ctx, repo, pr)
    if standing is not Standing.PROMOTION or record is None or record.history is None:
        return None
    chain, _ = await facts.chain(gh, ctx, repo)
    env = chain.by_name(record.history.target_env)
    if env is None or not decide.in_red_window(
        enabled=chain.settings.rollback_on_red,
        needs_health=env.gates.needs_health,
        merged_at=parse_time(pr.get("merged_at")),
        soak=env.gates.soak,
        now=datetime.now(UTC),
    ):
        return None
    checks = await facts.health(gh, ctx, repo, env, str(pr["merge_commit_sha"]))
    red = [c for c in checks if c.state is GateState.FAIL]
    if not red:
        return None
    why = "; ".join(f"`{c.name}`: {plan.inline_text(c.detail, 200)}" for c in red)
    reason = f"health of `{env.name}` turned red within the soak window after this promotion merged ({why})"
    outcome = await rollback(gh, ctx, repo=repo, pr_number=int(pr["number"]), reason=reason)
    note = (
        f"{RED_MARKER}\n### 🔴 Automatic rollback\n\n{reason[0].upper()}{reason[1:]}.\n\n"
        f"{outcome.message}\n\n`promotion.rollback_on_red` is on; merge the revert PR to undo the change."
    )
    await writes.comment(gh, ctx, repo, int(pr["number"]), RED_MARKER, note)
    return outcome


# --- errors ----------------------------------------------------------------------------------


async def answer(step: Awaitable[Any], what: str) -> Any:
    """Run one step for a person or the reconciler: every failure becomes a clear outcome.

    A 404 means the PR is not there; other GitHub and git errors say what failed and that it
    is safe to try again (every step is idempotent). Webhook routes use :func:`safe` instead,
    so the worker retries transient errors.
    """
    try:
        return await step
    except Stop as stop:
        return stop.outcome
    except gidgethub.BadRequest as exc:
        if exc.status_code == 404:
            return PromotionOutcome(
                False, f"Not found while {what}: check the PR number and the bot's access."
            )
        return PromotionOutcome(False, f"GitHub refused a request while {what} ({exc.status_code}: {exc}).")
    except gidgethub.HTTPException as exc:
        log.warning("promotion: GitHub error while %s: %s", what, exc.status_code)
        return PromotionOutcome(
            False, f"GitHub failed while {what} ({exc.status_code}); it is safe to try again."
        )
    except GitError as exc:
        log.warning("promotion: git error while %s: %s", what, exc)
        return PromotionOutcome(False, f"git failed while {what}: {exc}. It is safe to try again.")


async def safe(step: Awaitable[T]) -> T | PromotionOutcome:
    """Run one step; a :class:`Stop` becomes its outcome (logged), never an exception."""
    try:
        return await step
    except Stop as stop:
        log.info("promotion: %s", stop.outcome.message)
        return stop.outcome
