"""Promotion across environment branches: open, gate, merge and roll back promotion PRs.

Thin handler: it gathers facts from GitHub, git and the Kubernetes API, lets
:mod:`bot.domain.promotion` decide, and applies the decision idempotently (deterministic
branch names, marker-tagged bodies and comments, one check run per head sha).

State machine of one promotion PR (``gitops-bot/promote/<env>/<short sha>``)::

    merged into env N ──► branch pushed ──► PR open ──► gates pending ⇄ held / frozen / waiting
         │                                                 │ all hold (+ auto_merge)
         └─ conflicts ──► comment on source PR             ▼
            (/promote <env> retries)                   merged into env N+1 ──► next promotion

The four public coroutines below are what ``/promote``, ``/rollback`` and the reconciler call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gidgethub
import gidgethub.abc
import gidgethub.routing
import gidgethub.sansio

from bot.context import HandlerContext
from bot.domain.config import CONFIG_PATH, ConfigError, parse_config
from bot.domain.governance.approvals import ApprovalFacts, Review, plan_lookups
from bot.domain.labels import HOLD_LABEL, PROMOTION_LABEL, ROLLBACK_LABEL
from bot.domain.promotion import plan
from bot.domain.promotion.approvals import PROMOTION_PATH, approval_results, promotion_rules_config
from bot.domain.promotion.environments import Chain, Environment, EnvironmentConfigError, load_chain
from bot.domain.promotion.gates import (
    ApprovalResult,
    GateFacts,
    GateReport,
    GateState,
    HealthCheck,
    evaluate_gates,
)
from bot.git import rewrite
from bot.git.files import GitError, git, read_file_at, rev_parse
from bot.github.checks import CheckRun, write_check_runs
from bot.health.statuses import NO_STATUS, health_from_github, parse_time

log = logging.getLogger(__name__)

CHECK_NAME = "gitops-bot/promotion"
CONFIG_TTL = 60.0
GATES_START = "<!-- gitops-bot:gates -->"
GATES_END = "<!-- /gitops-bot:gates -->"
RED_MARKER = "<!-- gitops-bot:rollback-on-red -->"
_SECRETISH = re.compile(r"^\s*kind:\s*Secret\s*$", re.M)

router = gidgethub.routing.Router()


@dataclass
class PromotionOutcome:
    """What a promotion step did, for a PR comment (``message`` is short markdown)."""

    ok: bool
    message: str
    url: str | None = None


# --- rendered diff -------------------------------------------------------------------------

DiffRenderer = Callable[[Path, str, str, str], Awaitable[str]]
"""``(git_dir, base_rev, head_rev, env) -> markdown`` of the rendered change for ``env``."""

_diff_renderer: DiffRenderer | None = None


def set_diff_renderer(renderer: DiffRenderer | None) -> None:
    """Plug in the render engine's per-environment diff (None restores the file-diff fallback)."""
    global _diff_renderer
    _diff_renderer = renderer


async def _file_diff(git_dir: Path, base: str, head: str, env: str) -> str:
    """Fallback: the changed files as diff fences; Secrets and encrypted files are never shown."""
    names = git(git_dir, "diff", "--name-status", "--no-renames", "-z", base, head).decode("utf-8", "replace")
    fields = [f for f in names.split("\0") if f]
    pairs = list(zip(fields[::2], fields[1::2], strict=False))
    if not pairs:
        return ""
    parts = [f"{len(pairs)} file(s) change in `{env}`:", ""]
    for status, path in pairs[:200]:
        texts = [read_file_at(git_dir, base, path) or "", read_file_at(git_dir, head, path) or ""]
        hidden = any(_SECRETISH.search(t) for t in texts) or re.search(r"(secret|\.enc\.|sops)", path, re.I)
        if hidden:
            parts.append(f"- `{path}` ({status}): content hidden (Secret or encrypted file)")
            continue
        patch = git(git_dir, "diff", "--no-color", "--no-renames", "-U3", base, head, "--", path).decode(
            "utf-8", "replace"
        )
        body = "\n".join(patch.splitlines()[4:]) if patch else ""
        fence = "````" if "```" in body else "```"
        parts += [
            f"<details><summary><code>{path}</code> ({status})</summary>",
            "",
            f"{fence}diff",
            body,
            fence,
            "</details>",
        ]
    if len(pairs) > 200:
        parts.append(f"… and {len(pairs) - 200} more file(s).")
    return "\n".join(parts)


# --- small GitHub helpers ------------------------------------------------------------------


def _html(repo: str, number: int) -> str:
    return f"https://github.com/{repo}/pull/{number}"


async def _get(gh: gidgethub.abc.GitHubAPI, url: str) -> Any:
    return await gh.getitem(url)


async def _list(gh: gidgethub.abc.GitHubAPI, url: str, limit: int = 500) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for item in gh.getiter(url):
        out.append(item)
        if len(out) >= limit:
            break
    return out


async def _default_branch(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str) -> str:
    key = f"promotion:default_branch:{repo}"
    if key not in ctx.cache:
        data = await _get(gh, f"/repos/{repo}")
        ctx.cache[key] = str(data.get("default_branch") or "main")
    return str(ctx.cache[key])


class _Stop(Exception):
    """Stop a promotion step with a message for people (not a crash)."""

    def __init__(self, message: str, *, ok: bool = False, url: str | None = None) -> None:
        super().__init__(message)
        self.outcome = PromotionOutcome(ok, message, url)


async def _chain(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str) -> tuple[Chain, dict[str, Any]]:
    """Read the config from the default branch of a fresh mirror and build the chain.

    Cached in ``ctx.cache`` for :data:`CONFIG_TTL` seconds, so one delivery or one reconciler
    pass reads it once; an invalid config is never cached.
    """
    key = f"promotion:chain:{repo}"
    hit = ctx.cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < CONFIG_TTL:
        return hit[1]
    default = await _default_branch(gh, ctx, repo)
    git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/heads/{default}"])
    text = read_file_at(git_dir, f"refs/heads/{default}", CONFIG_PATH)
    try:
        config = parse_config(text)
        chain = load_chain(config)
    except (ConfigError, EnvironmentConfigError) as exc:
        raise _Stop(f"⚠️ `{CONFIG_PATH}` on `{default}` is not valid, so promotion is paused: {exc}") from exc
    if not chain.environments:
        raise _Stop(f"Promotion is not configured: add `environments` to `{CONFIG_PATH}` on `{default}`.")
    ctx.cache[key] = (time.monotonic(), (chain, config))
    return chain, config


def _marker_comment_key(marker: str) -> str:
    return marker.strip()


async def _upsert_comment(
    gh: gidgethub.abc.GitHubAPI, repo: str, number: int, marker: str, body: str
) -> str | None:
    """Create or update the comment that starts with ``marker``; return its URL."""
    comments = await _list(gh, f"/repos/{repo}/issues/{number}/comments?per_page=100")
    for c in comments:
        if str(c.get("body") or "").startswith(_marker_comment_key(marker)):
            if c.get("body") != body:
                await gh.patch(f"/repos/{repo}/issues/comments/{c['id']}", data={"body": body})
            return str(c.get("html_url") or "") or None
    created = await gh.post(f"/repos/{repo}/issues/{number}/comments", data={"body": body})
    return str((created or {}).get("html_url") or "") or None


async def _find_marker_comment(
    gh: gidgethub.abc.GitHubAPI, repo: str, number: int, marker: str
) -> dict[str, Any] | None:
    for c in await _list(gh, f"/repos/{repo}/issues/{number}/comments?per_page=100"):
        if str(c.get("body") or "").startswith(marker):
            return c
    return None


async def _prs_for_head(
    gh: gidgethub.abc.GitHubAPI, repo: str, branch: str, base: str
) -> list[dict[str, Any]]:
    owner = repo.split("/")[0]
    head = f"{quote(owner)}:{quote(branch, safe='')}"
    url = f"/repos/{repo}/pulls?state=all&head={head}&base={quote(base, safe='')}"
    return [p for p in await _list(gh, url, limit=20) if (p.get("head") or {}).get("ref") == branch]


def _branch_head(git_dir: Path, branch: str, pr: Mapping[str, Any] | None) -> str:
    """The bot branch's current sha: from the mirror, else from its PR, else ``""``."""
    sha = git(git_dir, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False).decode().strip()
    if not sha and pr is not None:
        sha = str((pr.get("head") or {}).get("sha") or "")
    return sha


async def _push_branch(ctx: HandlerContext, repo: str, branch: str, sha: str, current: str) -> bool:
    """Point the bot-owned ``branch`` at ``sha`` unless it already is; return whether it pushed.

    Always a force push: ``gitops-bot/...`` branches belong to the bot, and a branch left by an
    interrupted earlier run must be replaced, not refused.
    """
    if current == sha:
        return False
    await ctx.repos.push(repo, [f"{sha}:refs/heads/{branch}"], force=True)
    return True


async def _open_or_update_pr(
    gh: gidgethub.abc.GitHubAPI,
    repo: str,
    *,
    branch: str,
    base: str,
    title: str,
    body: str,
    labels: Sequence[str],
    existing: dict[str, Any] | None,
) -> dict[str, Any]:
    """Create the PR, or update title/body of ``existing`` only when they differ."""
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
            found = [p for p in await _prs_for_head(gh, repo, branch, base) if p.get("state") == "open"]
            if not found:
                raise _Stop(
                    f"GitHub refused to open the pull request from `{branch}` to `{base}`: {exc}"
                ) from exc
            pr = found[0]
    have = {str(lbl.get("name")) for lbl in pr.get("labels") or [] if isinstance(lbl, Mapping)}
    missing = [lbl for lbl in labels if lbl not in have]
    if missing:
        await gh.post(f"/repos/{repo}/issues/{pr['number']}/labels", data={"labels": missing})
    # the gates read the labels from this dict: make it say what the PR now carries
    return {**pr, "labels": [*(pr.get("labels") or []), *({"name": name} for name in missing)]}


# --- promote -------------------------------------------------------------------------------


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
    step = _promote(gh, ctx, repo=repo, source_pr=source_pr, target_env=target_env, explicit=True)
    return await _answer(step, f"promoting #{source_pr}")


async def _promote(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    *,
    repo: str,
    source_pr: int,
    target_env: str | None,
    explicit: bool,
    pr: dict[str, Any] | None = None,
) -> PromotionOutcome:
    chain, _ = await _chain(gh, ctx, repo)
    if pr is None:
        pr = await _get(gh, f"/repos/{repo}/pulls/{source_pr}")
    assert pr is not None
    if not pr.get("merged_at") or not pr.get("merge_commit_sha"):
        if pr.get("state") == "open" and plan.read_marker(pr.get("body")) is not None:
            return await _evaluate(gh, ctx, repo=repo, pr=pr)  # `/promote` on a promotion PR: check now
        raise _Stop(f"#{source_pr} is not merged yet; it is promoted after it merges.")
    base = str(pr["base"]["ref"])
    source = chain.by_branch(base)
    if source is None:
        envs = ", ".join(f"`{e.name}` (`{e.branch}`)" for e in chain.environments)
        raise _Stop(
            f"#{source_pr} merged into `{base}`, which is not an environment branch. Environments: {envs}."
        )
    nxt = chain.next_after(source)
    if target_env is not None:
        wanted = chain.by_name(target_env)
        if wanted is None:
            raise _Stop(f"There is no environment `{target_env}`. Environments: {', '.join(chain.names)}.")
        if wanted == source:
            raise _Stop(f"#{source_pr} is already in `{source.name}`.", ok=True)
        if wanted != nxt:
            step = f"`{nxt.name}`" if nxt else "nowhere (it is the last environment)"
            raise _Stop(
                f"#{source_pr} is in `{source.name}`; it goes to {step} next. "
                f"Environments are promoted one at a time, so `{wanted.name}` gets it from there."
            )
    if nxt is None:
        raise _Stop(f"`{source.name}` is the last environment; nothing to promote.", ok=True)
    if plan.read_marker(pr.get("body")) is None and (
        ROLLBACK_LABEL in {lbl.get("name") for lbl in pr.get("labels") or []}
        or str(pr["head"]["ref"]).startswith(plan.ROLLBACK_PREFIX)
    ):
        raise _Stop(f"#{source_pr} is a rollback; rollbacks stay in `{source.name}`.", ok=True)

    merge_sha = str(pr["merge_commit_sha"])
    branch = plan.branch_name(nxt.name, merge_sha)
    existing_all = await _prs_for_head(gh, repo, branch, nxt.branch)
    merged = next((p for p in existing_all if p.get("merged_at")), None)
    if merged is not None:
        url = str(merged.get("html_url") or _html(repo, int(merged["number"])))
        raise _Stop(
            f"#{source_pr} is already promoted to `{nxt.name}` in #{merged['number']}.", ok=True, url=url
        )
    existing = next((p for p in existing_all if p.get("state") == "open"), None)
    if existing is None and not explicit and existing_all:
        closed = existing_all[0]
        raise _Stop(
            f"The promotion of #{source_pr} to `{nxt.name}` (#{closed['number']}) was closed; "
            f"comment `/promote {nxt.name}` on #{source_pr} to reopen it.",
            ok=True,
        )
    if existing is None and existing_all:
        existing = existing_all[0]  # explicit /promote: reopen the closed one

    git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/heads/{nxt.branch}", f"refs/heads/{source.branch}"])
    onto = f"refs/heads/{nxt.branch}"
    current = _branch_head(git_dir, branch, existing)
    commits: tuple[str, ...] = (merge_sha,)
    if chain.settings.strategy == "merge":
        message = f"Promote {source.branch} to {nxt.branch} (#{source_pr})\n"
        result = rewrite.merge(git_dir, merge_sha, onto, message=message)
    else:
        commits = await _merged_commits(gh, repo, git_dir, pr, merge_sha)
        result = rewrite.cherry_pick_range(
            git_dir, list(commits), onto, trailer=f"Promoted from #{source_pr} ({source.name}) by gitops-bot."
        )

    conflict_tag = plan.CONFLICT_MARKER.format(env=nxt.name)
    if result.sha is None:
        if current and existing is not None and existing.get("state") == "open":
            # someone resolved it by hand on the promotion branch: keep their work
            url = str(existing.get("html_url") or _html(repo, int(existing["number"])))
            return await _finish(
                gh, ctx, repo, existing, f"Promotion to `{nxt.name}` is open (resolved by hand).", url
            )
        body = plan.conflict_comment(
            env=nxt,
            onto_branch=nxt.branch,
            source_pr=source_pr,
            source_sha=merge_sha,
            paths=result.conflicts,
            strategy=chain.settings.strategy,
            merge_commit=len(rewrite.commit_info(git_dir, merge_sha).parents) > 1,
        )
        await _upsert_comment(gh, repo, source_pr, conflict_tag, body)
        paths = ", ".join(f"`{p}`" for p in result.conflicts)
        return PromotionOutcome(
            False,
            f"#{source_pr} does not apply to `{nxt.branch}`: conflicts in {paths}. "
            f"Resolve by hand or fix `{nxt.branch}`, then comment `/promote {nxt.name}`.",
        )
    if result.empty and existing is None:
        return PromotionOutcome(
            True, f"`{nxt.branch}` already has the change of #{source_pr}; nothing to promote."
        )

    # keep an open PR's branch that is up to date with its target (it may hold a hand fix);
    # otherwise (new, or the target moved on) rebuild it on the target's tip
    head_sha = result.sha
    if current and existing is not None and _contains(git_dir, current, onto):
        head_sha = current
    else:
        await _push_branch(ctx, repo, branch, result.sha, current)
    previous = plan.read_marker(pr.get("body"))
    history = plan.next_history(
        chain,
        source,
        nxt,
        merged_pr=source_pr,
        merged_title=str(pr.get("title") or ""),
        merged_sha=merge_sha,
        previous=previous,
        commits=commits,
        merged_at=str(pr.get("merged_at") or ""),
    )
    renderer = _diff_renderer or _file_diff
    try:
        diff_md = await renderer(git_dir, onto, head_sha, nxt.name)
    except Exception as exc:  # a broken renderer must not stop promotion; say so in the body
        log.warning("promotion diff failed for %s#%s: %s", repo, source_pr, type(exc).__name__)
        diff_md = f"_The rendered diff could not be produced ({type(exc).__name__}); run `/diff` on this PR._"
    gates_block = existing and _gates_block(str(existing.get("body") or ""))
    body = _with_gates(
        plan.pr_body(history, repo=repo, diff_markdown=diff_md, checklist="", auto_merge=nxt.auto_merge),
        gates_block or "_Evaluating gates…_",
    )
    title = plan.pr_title(history.origin_pr, nxt.name, history.origin_title)
    labels = [PROMOTION_LABEL, *chain.settings.labels]
    if existing is None and HOLD_LABEL in {lbl.get("name") for lbl in pr.get("labels") or []}:
        labels.append(HOLD_LABEL)  # a held change stays held on its way; `/unhold` there releases it
    promo = await _open_or_update_pr(
        gh, repo, branch=branch, base=nxt.branch, title=title, body=body, labels=labels, existing=existing
    )
    url = str(promo.get("html_url") or _html(repo, int(promo["number"])))
    if await _find_marker_comment(gh, repo, source_pr, conflict_tag) is not None:
        await _upsert_comment(gh, repo, source_pr, conflict_tag, plan.resolved_comment(nxt, url))
    promo["head"] = {**(promo.get("head") or {}), "ref": branch, "sha": head_sha}
    return await _finish(gh, ctx, repo, promo, f"Promotion of #{source_pr} to `{nxt.name}`: {url}", url)


async def _finish(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, promo: dict[str, Any], message: str, url: str
) -> PromotionOutcome:
    evaluated = await _evaluate(gh, ctx, repo=repo, pr=promo)
    return PromotionOutcome(True, f"{message}\n\n{evaluated.message}", url)


async def _merged_commits(
    gh: gidgethub.abc.GitHubAPI, repo: str, git_dir: Path, pr: Mapping[str, Any], merge_sha: str
) -> tuple[str, ...]:
    """The commits a merged PR added to its base, oldest first.

    A merge commit or a squash commit is one commit (picked against its first parent). A
    rebase merge leaves the PR's commits, rewritten, as the last ``pr.commits`` first-parent
    commits; it is told apart from a squash by their subjects matching the PR's own commits
    (``GET /pulls/{n}/commits``), so a squash never drags in unrelated earlier commits.
    """
    count = int(pr.get("commits") or 1)
    if count <= 1 or len(rewrite.commit_info(git_dir, merge_sha).parents) != 1:
        return (merge_sha,)
    out = git(git_dir, "rev-list", "--reverse", "--first-parent", f"-n{count}", merge_sha).decode().split()
    theirs = await _list(gh, f"/repos/{repo}/pulls/{pr['number']}/commits?per_page=100", limit=250)
    wanted = [str((c.get("commit") or {}).get("message") or "").split("\n", 1)[0] for c in theirs]
    have = [rewrite.commit_info(git_dir, c).subject for c in out]
    return tuple(out) if len(out) == count and have == wanted else (merge_sha,)


def _contains(git_dir: Path, head: str, rev: str) -> bool:
    """Whether commit ``head`` (maybe unknown to the mirror) contains ``rev``."""
    try:
        return rewrite.is_ancestor(git_dir, rev_parse(git_dir, rev), head)
    except GitError:
        return False


def _gates_block(body: str) -> str | None:
    start, end = body.find(GATES_START), body.find(GATES_END)
    if start < 0 or end < start:
        return None
    return body[start + len(GATES_START) : end].strip()


def _with_gates(body: str, block: str) -> str:
    """Put the gate checklist between the gates markers under ``### Gates``."""
    tagged = f"{GATES_START}\n{block}\n{GATES_END}"
    if GATES_START in body and GATES_END in body:
        start, end = body.find(GATES_START), body.find(GATES_END) + len(GATES_END)
        return body[:start] + tagged + body[end:]
    return body.replace("### Gates\n\n", f"### Gates\n\n{tagged}", 1)


# --- evaluate ------------------------------------------------------------------------------


async def evaluate_promotion(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, promotion_pr: int
) -> PromotionOutcome:
    """Re-evaluate the gates of one promotion PR, publish the check run, merge when all hold."""

    async def step() -> PromotionOutcome:
        pr = await _get(gh, f"/repos/{repo}/pulls/{promotion_pr}")
        return await _evaluate(gh, ctx, repo=repo, pr=pr)

    return await _answer(step(), f"evaluating #{promotion_pr}")


def _kubeconfig(ctx: HandlerContext) -> str | None:
    value = getattr(ctx.settings, "kubeconfig", None)
    return str(value) if value else os.environ.get("KUBECONFIG") or None


async def _github_health(
    gh: gidgethub.abc.GitHubAPI, repo: str, contexts: Sequence[str], sha: str
) -> list[HealthCheck]:
    combined = await _get(gh, f"/repos/{repo}/commits/{sha}/status")
    runs = await _get(gh, f"/repos/{repo}/commits/{sha}/check-runs?per_page=100")
    return health_from_github(contexts, combined.get("statuses") or [], runs.get("check_runs") or [])


def _on_branch_after(git_dir: Path, branch: str, sha: str, later: str) -> bool:
    """Whether ``later`` is on ``branch`` and already includes ``sha``."""
    return rewrite.is_ancestor(git_dir, later, f"refs/heads/{branch}") and rewrite.is_ancestor(
        git_dir, sha, later
    )


async def _health(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, env: Environment, sha: str
) -> list[HealthCheck]:
    """Health signals of ``env`` at ``sha``.

    A busy environment may have applied (and reported on) only a later commit of its branch:
    a context with no status at ``sha`` takes its status from the branch tip when the tip
    includes ``sha``; a Kubernetes object at a later revision that includes ``sha`` counts.
    """
    checks: list[HealthCheck] = []
    git_dir: Path | None = None
    if env.gates.contexts:
        checks = await _github_health(gh, repo, env.gates.contexts, sha)
        missing = [c.name for c in checks if c.detail == NO_STATUS]
        if missing:
            git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/heads/{env.branch}"])
            tip = git(git_dir, "rev-parse", "--verify", "-q", f"refs/heads/{env.branch}", check=False)
            tip_sha = tip.decode().strip()
            if tip_sha and tip_sha != sha and rewrite.is_ancestor(git_dir, sha, tip_sha):
                later = {c.name: c for c in await _github_health(gh, repo, missing, tip_sha)}
                checks = [
                    replace(
                        later[c.name],
                        detail=f"{later[c.name].detail} (at `{tip_sha[:7]}`, which includes it)",
                    )
                    if c.name in later and later[c.name].detail != NO_STATUS
                    else c
                    for c in checks
                ]
    kh = env.gates.kubernetes
    if kh is not None and not kh.empty:
        from bot.health.kube import kubernetes_health  # the kubernetes client is heavy: load on use

        if git_dir is None:
            git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/heads/{env.branch}"])
        mirror = git_dir

        def contains(later: str) -> bool:
            return _on_branch_after(mirror, env.branch, sha, later)

        checks += await kubernetes_health(kh, sha, kubeconfig=_kubeconfig(ctx), contains=contains)
    return checks


async def _approvals(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    repo: str,
    pr: Mapping[str, Any],
    rules: Sequence[str],
    config: Mapping[str, Any],
) -> tuple[ApprovalResult, ...]:
    """Gather the governance facts of the promotion PR (reviews, trees, permissions, teams)."""
    number = int(pr["number"])
    head_sha = str(pr["head"]["sha"])
    scoped, _ = promotion_rules_config(config, rules)
    reviews = tuple(
        Review(
            user=str((r.get("user") or {}).get("login") or ""),
            state=str(r.get("state") or ""),
            commit_id=str(r.get("commit_id") or ""),
            submitted_at=str(r.get("submitted_at") or ""),
            id=int(r.get("id") or 0),
        )
        for r in await _list(gh, f"/repos/{repo}/pulls/{number}/reviews?per_page=100")
        if (r.get("user") or {}).get("login")
    )
    git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/heads/{pr['head']['ref']}"])
    trees = {}
    for sha in {head_sha, *(r.commit_id for r in reviews)}:
        tree = git(git_dir, "rev-parse", "--verify", "-q", f"{sha}^{{tree}}", check=False).decode().strip()
        if tree:
            trees[sha] = tree
    base_ref = str(pr["base"]["ref"])
    lookups = plan_lookups(scoped, [PROMOTION_PATH], base_ref, reviews, None)
    permissions: dict[str, str] = {}
    for login in lookups.reviewers:
        try:
            perm = await _get(gh, f"/repos/{repo}/collaborators/{quote(login)}/permission")
            permissions[login] = str(perm.get("role_name") or perm.get("permission") or "none")
        except gidgethub.BadRequest as exc:  # 404: not a collaborator
            if exc.status_code != 404:
                raise
            permissions[login] = "none"
    members: dict[str, frozenset[str]] = {}
    for team in lookups.teams:
        org, _, slug = team.partition("/")
        found = set()
        for login in lookups.reviewers:
            url = f"/orgs/{quote(org)}/teams/{quote(slug)}/memberships/{quote(login)}"
            try:
                membership = await _get(gh, url)
            except gidgethub.BadRequest as exc:  # 404: not a member; 403: the App cannot see teams
                if exc.status_code not in (403, 404):
                    raise
                continue
            if membership.get("state") == "active":
                found.add(login)
        members[team] = frozenset(found)
    facts = ApprovalFacts(
        author=str((pr.get("user") or {}).get("login") or ""),
        head_sha=head_sha,
        head_tree=trees.get(head_sha, ""),
        base_ref=base_ref,
        changed_paths=(PROMOTION_PATH,),
        reviews=reviews,
        trees=trees,
        team_members=members,
        permissions=permissions,
    )
    return approval_results(rules, config, facts)


_EVALUATING: dict[str, asyncio.Lock] = {}


async def _evaluate(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, pr: dict[str, Any]
) -> PromotionOutcome:
    """Evaluate one promotion PR, one evaluation at a time per PR in this process.

    The worker (several deliveries at once) and the reconciler may evaluate the same PR
    together; unserialised, both saw no check run and created one each. Whoever had to wait
    re-reads the PR, which the other may just have merged.
    """
    # a lock belongs to one event loop: one left held by a loop that closed must not block another
    lock = _EVALUATING.setdefault(f"{id(asyncio.get_running_loop())}:{repo}#{pr['number']}", asyncio.Lock())
    waited = lock.locked()
    async with lock:
        if waited:
            pr = await _get(gh, f"/repos/{repo}/pulls/{pr['number']}")
        return await _evaluate_now(gh, ctx, repo=repo, pr=pr)


async def _evaluate_now(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, pr: dict[str, Any]
) -> PromotionOutcome:
    history = plan.read_marker(pr.get("body"))
    number = int(pr["number"])
    if history is None:
        raise _Stop(f"#{number} is not a promotion PR (its body has no promotion marker).")
    if pr.get("merged_at"):
        return PromotionOutcome(True, f"#{number} is merged.", str(pr.get("html_url") or _html(repo, number)))
    if pr.get("state") == "closed":
        return PromotionOutcome(
            True, f"#{number} is closed; `/promote {history.target_env}` on #{history.source_pr} reopens it."
        )
    chain, config = await _chain(gh, ctx, repo)
    source, target = chain.by_name(history.source_env), chain.by_name(history.target_env)
    if source is None or target is None:
        raise _Stop(
            f"#{number} promotes `{history.source_env}` to `{history.target_env}`, which are no longer both "
            f"configured environments ({', '.join(chain.names)}); close it or fix `{CONFIG_PATH}`."
        )
    head_sha = str(pr["head"]["sha"])
    now = datetime.now(UTC)
    health = await _health(gh, ctx, repo, source, history.source_sha)
    approvals = (
        await _approvals(gh, ctx, repo, pr, target.gates.approvals, config) if target.gates.approvals else ()
    )
    labels = {str(lbl.get("name")) for lbl in pr.get("labels") or []}
    queue = await _queue(gh, repo, target)
    facts = GateFacts(
        now=now,
        health=tuple(health),
        merged_at=parse_time(history.merged_at),
        approvals=approvals,
        held=HOLD_LABEL in labels,
        ahead=plan.in_flight_ahead(queue, number),
    )
    report = evaluate_gates(source, target, facts, hold_label=HOLD_LABEL)
    await _publish(gh, repo, pr, head_sha, history, report)
    url = str(pr.get("html_url") or _html(repo, number))
    if report.passed and target.auto_merge:
        return await _merge(gh, ctx, repo, pr, head_sha, chain, target, url)
    if report.passed:
        return PromotionOutcome(
            True, f"All gates hold on #{number}; `{target.name}` waits for a person to merge it.", url
        )
    return PromotionOutcome(report.state is not GateState.FAIL, f"#{number}: {report.summary_line()}", url)


async def _queue(gh: gidgethub.abc.GitHubAPI, repo: str, target: Environment) -> list[plan.Queued]:
    prs = await _list(gh, f"/repos/{repo}/pulls?state=open&base={quote(target.branch, safe='')}&per_page=100")
    out = []
    for p in prs:
        parsed = plan.parse_branch(str((p.get("head") or {}).get("ref") or ""))
        h = plan.read_marker(p.get("body"))
        if parsed is None or h is None or parsed[0] != target.name:
            continue
        out.append(plan.Queued(int(p["number"]), target.name, (h.merged_at or "9999", h.source_pr)))
    return out


async def _publish(
    gh: gidgethub.abc.GitHubAPI,
    repo: str,
    pr: dict[str, Any],
    head_sha: str,
    history: plan.History,
    report: GateReport,
) -> None:
    """Create or update the check run and the checklist in the body, only when they changed."""
    title = report.summary_line()
    summary = (
        f"Promotion of [#{history.origin_pr}]({_html(repo, history.origin_pr)}) from `{history.source_env}` "
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
    await write_check_runs(gh, repo, head_sha, [run])
    body = str(pr.get("body") or "")
    new_body = _with_gates(body, report.task_list())
    if new_body != body:
        await gh.patch(f"/repos/{repo}/pulls/{pr['number']}", data={"body": new_body})
        pr["body"] = new_body


async def _merge(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    repo: str,
    pr: dict[str, Any],
    head_sha: str,
    chain: Chain,
    target: Environment,
    url: str,
) -> PromotionOutcome:
    number = int(pr["number"])
    try:
        await gh.put(
            f"/repos/{repo}/pulls/{number}/merge",
            data={"sha": head_sha, "merge_method": chain.settings.merge_method},
        )
    except gidgethub.HTTPException as exc:
        # 405 not mergeable (branch protection, required checks), 409 head moved: try again later
        msg = (
            f"All gates hold on #{number}, but GitHub did not merge it ({exc}). "
            "The bot tries again on the next event; check branch protection and required checks."
        )
        return PromotionOutcome(False, msg, url)
    merged = f"All gates hold: merged #{number} into `{target.branch}`."
    # carry on now rather than wait for the merge webhook (which then finds nothing to do)
    fresh = await _get(gh, f"/repos/{repo}/pulls/{number}")
    nxt = await _safe(
        _promote(gh, ctx, repo=repo, source_pr=number, target_env=None, explicit=False, pr=fresh)
    )
    await _refresh_queue(gh, ctx, repo, target.branch)
    if isinstance(nxt, PromotionOutcome) and nxt.url:
        merged += f" Next: {nxt.url}"
    return PromotionOutcome(True, merged, url)


# --- rollback ------------------------------------------------------------------------------


async def rollback_pr(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, pr_number: int, reason: str
) -> PromotionOutcome:
    """Open (or find) a PR that reverts merged PR ``pr_number`` on the branch it merged into."""
    return await _answer(
        _rollback(gh, ctx, repo=repo, pr_number=pr_number, reason=reason), f"rolling back #{pr_number}"
    )


async def _rollback(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, pr_number: int, reason: str
) -> PromotionOutcome:
    pr = await _get(gh, f"/repos/{repo}/pulls/{pr_number}")
    if not pr.get("merged_at") or not pr.get("merge_commit_sha"):
        raise _Stop(f"#{pr_number} is not merged, so there is nothing to roll back; close it instead.")
    base = str(pr["base"]["ref"])
    sha = str(pr["merge_commit_sha"])
    try:
        chain, _ = await _chain(gh, ctx, repo)
        env = chain.by_branch(base)
    except _Stop:
        env = None
    env_name = env.name if env else re.sub(r"[^A-Za-z0-9._-]+", "-", base)
    branch = plan.rollback_branch(env_name, sha)
    existing_all = await _prs_for_head(gh, repo, branch, base)
    done = next((p for p in existing_all if p.get("merged_at")), None)
    if done is not None:
        raise _Stop(
            f"#{pr_number} was already rolled back in #{done['number']}.", ok=True, url=done.get("html_url")
        )
    existing = next((p for p in existing_all if p.get("state") == "open"), None)
    git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/heads/{base}"])
    current = _branch_head(git_dir, branch, existing)
    title = f"Roll back #{pr_number} in {env_name}: {pr.get('title') or ''}".strip()
    if existing is not None and current:
        url = str(existing.get("html_url") or _html(repo, int(existing["number"])))
        return PromotionOutcome(True, f"The rollback of #{pr_number} is open: {url}", url)
    commits = list(reversed(await _merged_commits(gh, repo, git_dir, pr, sha)))
    head = f"refs/heads/{base}"
    result = rewrite.RewriteResult(None)
    for c in commits:  # newest first
        result = rewrite.revert(git_dir, c, head, reason=f"Rollback of #{pr_number}: {reason}")
        if result.sha is None:
            paths = ", ".join(f"`{p}`" for p in result.conflicts)
            raise _Stop(
                f"#{pr_number} cannot be reverted cleanly on `{base}`: later changes touch {paths}. "
                f"Revert by hand: `git revert -m 1 {sha}` on `{base}`, fix those files, and open a PR."
            )
        head = result.sha
    if result.sha is None or result.sha == rev_parse(git_dir, f"refs/heads/{base}"):
        raise _Stop(f"`{base}` no longer has the change of #{pr_number}; nothing to roll back.", ok=True)
    await _push_branch(ctx, repo, branch, result.sha, current)
    body = plan.rollback_body(repo=repo, env=env_name, pr_number=pr_number, sha=sha, reason=reason)
    promo = await _open_or_update_pr(
        gh, repo, branch=branch, base=base, title=title, body=body, labels=[ROLLBACK_LABEL], existing=existing
    )
    url = str(promo.get("html_url") or _html(repo, int(promo["number"])))
    return PromotionOutcome(
        True, f"Opened the rollback of #{pr_number}: {url} (merge it to undo the change).", url
    )


async def _rollback_if_red(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, pr: dict[str, Any]
) -> PromotionOutcome | None:
    """With ``rollback_on_red``: revert a merged promotion whose env turned red within its soak."""
    history = plan.read_marker(pr.get("body"))
    if history is None or not pr.get("merged_at") or not pr.get("merge_commit_sha"):
        return None
    chain, _ = await _chain(gh, ctx, repo)
    env = chain.by_name(history.target_env)
    if not chain.settings.rollback_on_red or env is None or not env.gates.needs_health:
        return None
    merged_at = parse_time(pr.get("merged_at"))
    window = env.gates.soak
    if merged_at is None or (window.total_seconds() > 0 and datetime.now(UTC) - merged_at > window):
        return None
    checks = await _health(gh, ctx, repo, env, str(pr["merge_commit_sha"]))
    red = [c for c in checks if c.state is GateState.FAIL]
    if not red:
        return None
    why = "; ".join(f"`{c.name}`: {plan.inline_text(c.detail, 200)}" for c in red)
    reason = f"health of `{env.name}` turned red within the soak window after this promotion merged ({why})"
    outcome = await _rollback(gh, ctx, repo=repo, pr_number=int(pr["number"]), reason=reason)
    note = (
        f"{RED_MARKER}\n### 🔴 Automatic rollback\n\n{reason[0].upper()}{reason[1:]}.\n\n"
        f"{outcome.message}\n\n`promotion.rollback_on_red` is on; merge the revert PR to undo the change."
    )
    await _upsert_comment(gh, repo, int(pr["number"]), RED_MARKER, note)
    return outcome


# --- reconcile -----------------------------------------------------------------------------


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
        chain, _ = await _chain(gh, ctx, repo)
    except _Stop as stop:
        return [stop.outcome]
    outcomes: list[PromotionOutcome] = []
    since = datetime.now(UTC) - chain.settings.reconcile_lookback
    for env in chain.environments:
        nxt = chain.next_after(env)
        closed = await _list(
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
                for p in await _list(
                    gh,
                    f"/repos/{repo}/pulls?state=all&base={quote(nxt.branch, safe='')}"
                    "&sort=created&direction=desc&per_page=100",
                    limit=200,
                )
            }
            for p in merged:
                if plan.branch_name(nxt.name, str(p.get("merge_commit_sha"))) in known:
                    continue
                step = _promote(
                    gh, ctx, repo=repo, source_pr=int(p["number"]), target_env=None, explicit=False, pr=p
                )
                outcomes.append(await _answer(step, f"promoting #{p['number']}"))
        for p in merged:
            if plan.read_marker(p.get("body")) is not None:
                red = await _answer(
                    _rollback_if_red(gh, ctx, repo, p), f"checking #{p['number']} for red health"
                )
                if red is not None:
                    outcomes.append(red)
    for p in await _list(gh, f"/repos/{repo}/pulls?state=open&per_page=100"):
        if plan.parse_branch(str((p.get("head") or {}).get("ref") or "")) is None:
            continue
        outcomes.append(await _answer(_evaluate(gh, ctx, repo=repo, pr=p), f"evaluating #{p['number']}"))
    return outcomes


# --- webhook routes ------------------------------------------------------------------------


def _repo(event: gidgethub.sansio.Event) -> str:
    return str(event.data["repository"]["full_name"])


async def _evaluate_for_sha(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, sha: str, context: str | None = None
) -> None:
    """Re-evaluate open promotion PRs whose source commit is ``sha``; roll back on red.

    When ``context`` (a status context or check run name) is a configured health context,
    promotions whose source commit ``sha`` includes on the same environment branch are
    re-evaluated too. Most statuses are about feature branches: the config and the mirror are
    read only when a promotion PR may be concerned.
    """
    others: list[tuple[dict[str, Any], plan.History]] = []
    for p in await _list(gh, f"/repos/{repo}/pulls?state=open&per_page=100"):
        parsed = plan.parse_branch(str((p.get("head") or {}).get("ref") or ""))
        h = plan.read_marker(p.get("body"))
        if parsed is None or h is None:
            continue
        if h.source_sha == sha:
            await _safe(_evaluate(gh, ctx, repo=repo, pr=p))
        else:
            others.append((p, h))
    if others and context:
        chain, _ = await _chain(gh, ctx, repo)
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
                if _on_branch_after(git_dir, env.branch, h.source_sha, sha):
                    await _safe(_evaluate(gh, ctx, repo=repo, pr=p))
    # rollback_on_red: is sha the merge commit of a recently merged promotion PR?
    recent = await _list(
        gh, f"/repos/{repo}/pulls?state=closed&sort=updated&direction=desc&per_page=30", limit=30
    )
    for p in recent:
        if p.get("merge_commit_sha") == sha and p.get("merged_at") and plan.read_marker(p.get("body")):
            await _safe(_rollback_if_red(gh, ctx, repo, p))


async def _refresh_queue(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, base: str) -> None:
    """After a promotion into ``base`` merged or closed, rebuild and re-evaluate the others.

    Each queued promotion branch is rebuilt on the new tip of ``base`` (same deterministic
    name) so the next one in line merges cleanly, then its gates are evaluated.
    """
    for p in await _list(gh, f"/repos/{repo}/pulls?state=open&base={quote(base, safe='')}&per_page=100"):
        h = plan.read_marker(p.get("body"))
        if plan.parse_branch(str((p.get("head") or {}).get("ref") or "")) is None or h is None:
            continue
        await _safe(
            _promote(gh, ctx, repo=repo, source_pr=h.source_pr, target_env=h.target_env, explicit=False)
        )


async def _answer(step: Awaitable[Any], what: str) -> Any:
    """Run one step for a person or the reconciler: every failure becomes a clear outcome.

    A 404 means the PR is not there; other GitHub and git errors say what failed and that it
    is safe to try again (every step is idempotent). Webhook routes use :func:`_safe` instead,
    so the worker retries transient errors.
    """
    try:
        return await step
    except _Stop as stop:
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


async def _safe(step: Awaitable[Any]) -> Any:
    """Run one step; a :class:`_Stop` becomes its outcome (logged), never an exception."""
    try:
        return await step
    except _Stop as stop:
        log.info("promotion: %s", stop.outcome.message)
        return stop.outcome


@router.register("pull_request", action="closed")
async def on_pull_request_closed(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext
) -> None:
    """A PR merged into an environment branch starts its promotion; a closed promotion frees the queue."""
    pr = event.data["pull_request"]
    repo = _repo(event)
    if pr.get("merged"):
        await _safe(
            _promote(gh, ctx, repo=repo, source_pr=int(pr["number"]), target_env=None, explicit=False, pr=pr)
        )
        if plan.read_marker(pr.get("body")) is not None:
            await _safe(_rollback_if_red(gh, ctx, repo, pr))
    if plan.parse_branch(str(pr["head"]["ref"])) is not None:
        await _refresh_queue(gh, ctx, repo, str(pr["base"]["ref"]))


@router.register("pull_request", action="opened")
@router.register("pull_request", action="reopened")
@router.register("pull_request", action="synchronize")
@router.register("pull_request", action="labeled")
@router.register("pull_request", action="unlabeled")
async def on_promotion_pr_changed(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext
) -> None:
    """Re-evaluate a promotion PR's gates when it opens, moves or its labels change."""
    pr = event.data["pull_request"]
    if plan.parse_branch(str(pr["head"]["ref"])) is None or plan.read_marker(pr.get("body")) is None:
        return
    await _safe(_evaluate(gh, ctx, repo=_repo(event), pr=dict(pr)))


@router.register("pull_request_review", action="submitted")
@router.register("pull_request_review", action="dismissed")
async def on_review(event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext) -> None:
    """Approvals are a gate: re-evaluate the promotion PR on every review."""
    pr = event.data["pull_request"]
    if plan.parse_branch(str(pr["head"]["ref"])) is None:
        return
    await _safe(evaluate_promotion(gh, ctx, repo=_repo(event), promotion_pr=int(pr["number"])))


@router.register("status")
async def on_status(event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext) -> None:
    """A commit status may be an environment's health signal."""
    data = event.data
    await _safe(_evaluate_for_sha(gh, ctx, _repo(event), str(data["sha"]), str(data.get("context") or "")))


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
    await _safe(_evaluate_for_sha(gh, ctx, _repo(event), str(run["head_sha"]), str(run.get("name") or "")))


@router.register("check_suite", action="completed")
async def on_check_suite(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext
) -> None:
    """A finished check suite may carry health signals."""
    suite = event.data["check_suite"]
    app = (suite.get("app") or {}).get("slug") or ""
    if app and f"{app}[bot]" == ctx.bot_login:
        return
    await _safe(_evaluate_for_sha(gh, ctx, _repo(event), str(suite["head_sha"])))
