"""Keep the fleet dashboard's facts current (see docs/dashboard.md).

- ``push`` to an environment branch: recompute that branch's clusters (render cache: only the
  targets the push touched render again) and the commits waiting between it and its neighbours;
  to the default branch: each environment's freeze windows (holds are read from the bot's hold
  records when the page is served).
- ``status``: the health of an environment whose tip is that commit (the combined status the
  promotion gates read).
- ``pull_request`` closed and merged: the governance record, from the bot's own check runs on
  the merged head (signatures, approvals, and any gitops-bot check failing: an admin bypass);
  a merged promotion PR becomes its environment's last promotion.

Nothing is collected unless someone can look: GitHub login (``GITHUB_CLIENT_ID``) or a fleet
token (``GITOPS_BOT_FLEET_TOKEN``) is configured. Configuration comes from the default branch.
Errors are logged, never raised: the dashboard is kept best-effort, and a failure here must not
mark the delivery failed (and retried) for the other handlers' sake.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gidgethub.abc
import gidgethub.routing
import gidgethub.sansio

from bot.domain.config import CONFIG_PATH
from bot.domain.fleet import MergedPR
from bot.domain.promotion.environments import Chain, Environment
from bot.fleet import state
from bot.fleet.collect import chain_of, collect_branch, pending_commits, read_config
from bot.git.files import GitError, rev_parse
from bot.queue.base import DeliveryStore
from bot.render_runtime.cache import RenderCache
from bot.service.context import HandlerContext
from bot.service.records import is_promotion_pr

log = logging.getLogger(__name__)
PUSH_COMMITS_LISTED = 20  # a push event lists at most this many commits (GitHub's webhook docs)
router = gidgethub.routing.Router()

#: One render cache and masking key per process: a push re-renders only what it touched.
_CACHE = RenderCache(max_entries=50_000)
_KEY = os.urandom(32)
_FAILED = {"failure", "timed_out", "action_required", "startup_failure"}
PROMOTION_CHECK = "gitops-bot/promotion"


def _store(ctx: HandlerContext) -> DeliveryStore | None:
    """The store to keep facts in, or None when nobody can look (no GitHub login, no fleet token)."""
    settings = ctx.settings
    if getattr(settings, "oauth_client_id", None) or getattr(settings, "fleet_token", None):
        return ctx.store
    return None


def _repo(event: gidgethub.sansio.Event) -> str:
    return str(event.data["repository"]["full_name"])


@router.register("push")
async def on_push(event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext) -> None:
    """A push to an environment branch recomputes that branch."""
    ref = str(event.data.get("ref") or "")
    store = _store(ctx)
    if store is None or not ref.startswith("refs/heads/") or event.data.get("deleted"):
        return
    try:
        await refresh_branch(ctx, _repo(event), ref.removeprefix("refs/heads/"), event.data, gh)
    except Exception:
        log.exception("fleet: could not recompute %s %s", _repo(event), ref)


async def refresh_branch(
    ctx: HandlerContext,
    repo: str,
    branch: str,
    payload: dict[str, Any],
    gh: gidgethub.abc.GitHubAPI | None = None,
) -> bool:
    """Recompute ``branch`` of ``repo`` when it is an environment branch; return whether it was.

    With ``gh``, the new tip's health is read at once: a status can arrive (and be dropped by
    :func:`on_status`, which only knows the previous tip) before this push is processed.
    """
    assert ctx.store is not None
    default = str((payload.get("repository") or {}).get("default_branch") or "main")
    git_dir = await ctx.repos.git_dir(repo)
    try:
        config = read_config(git_dir, rev_parse(git_dir, f"refs/heads/{default}"))
    except GitError:
        return False
    chain = chain_of(config)
    if chain is not None and branch == default:
        for each in chain.environments:  # the freeze windows follow the default branch's configuration
            await state.update_env(ctx.store, repo, each.branch, freeze=list(each.gates.freeze))
        if config_touched(payload):  # every branch is read with this configuration (registry, policy)
            for each in chain.environments:
                if each.branch != default:
                    await _collect(ctx, repo, git_dir, config, chain, each)
    env = chain.by_branch(branch) if chain else None
    if chain is None or env is None:
        return False
    head = await _collect(ctx, repo, git_dir, config, chain, env)
    if gh is not None and head:
        await _set_health(ctx.store, gh, repo, branch, head)
    return True


async def _set_health(
    store: DeliveryStore, gh: gidgethub.abc.GitHubAPI, repo: str, branch: str, sha: str
) -> None:
    """The environment's health from the combined commit status of its tip ``sha``."""
    combined = await gh.getitem(f"/repos/{repo}/commits/{sha}/status")
    statuses = combined.get("statuses") or []
    if not statuses:
        return
    await state.update_env(
        store,
        repo,
        branch,
        health=_health(str(combined.get("state") or "")),
        health_detail=", ".join(f"{s.get('context')}: {s.get('state')}" for s in statuses),
        updated_at=datetime.now(UTC).isoformat(),
    )


def config_touched(payload: Mapping[str, Any]) -> bool:
    """Whether a push may have changed the configuration (a truncated commit list counts as yes)."""
    commits = [c for c in payload.get("commits") or [] if isinstance(c, Mapping)]
    if not commits or len(commits) >= PUSH_COMMITS_LISTED:
        return True
    return any(
        CONFIG_PATH in (c.get(kind) or ()) for c in commits for kind in ("added", "modified", "removed")
    )


async def _collect(
    ctx: HandlerContext, repo: str, git_dir: Path, config: dict[str, Any], chain: Chain, env: Environment
) -> str:
    """Collect and store one environment branch; return its tip ("" when the branch is not there)."""
    assert ctx.store is not None
    try:
        clusters, facts = await asyncio.to_thread(
            collect_branch, git_dir, repo, env.branch, secret_key=_KEY, cache=_CACHE, config=config
        )
    except GitError:  # the branch is not there (yet)
        return ""
    await state.save_branch(ctx.store, clusters, facts)
    before = chain.previous(env)
    if before is not None:
        waiting = await asyncio.to_thread(pending_commits, git_dir, before.branch, env.branch)
        await state.update_env(ctx.store, repo, before.branch, pending_commits=waiting)
    return facts.head


def _health(combined: str) -> str:
    return {"success": "healthy", "failure": "failing", "error": "failing", "pending": "pending"}.get(
        combined, "unknown"
    )


@router.register("status")
async def on_status(event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext) -> None:
    """A commit status on an environment's tip updates that environment's health."""
    store = _store(ctx)
    if store is None:
        return
    repo, sha = _repo(event), str(event.data.get("sha") or "")
    try:
        facts = await state.load_facts(store)
        for env in facts.envs:
            if env.repo == repo and env.head == sha:
                await _set_health(store, gh, repo, env.branch, sha)
    except Exception:
        log.exception("fleet: could not update health of %s at %s", repo, sha)


@router.register("pull_request", action="closed")
async def on_merged(event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext) -> None:
    """Record a merged pull request for governance (and a promotion as its environment's last)."""
    pr = event.data["pull_request"]
    store = _store(ctx)
    if store is None or not pr.get("merged"):
        return
    repo = _repo(event)
    try:
        runs = await gh.getitem(f"/repos/{repo}/commits/{pr['head']['sha']}/check-runs?per_page=100")
        mine = [
            r
            for r in runs.get("check_runs") or []
            if f"{(r.get('app') or {}).get('slug')}[bot]" == ctx.bot_login
            and str(r.get("name", "")).startswith("gitops-bot")
        ]
        by_name = {str(r["name"]): r for r in mine}

        def ok(name: str) -> bool:
            return (by_name.get(name) or {}).get("conclusion") in ("success", "neutral", "skipped")

        failing = tuple(sorted(n for n, r in by_name.items() if r.get("conclusion") in _FAILED))
        merged_at = str(pr.get("merged_at") or datetime.now(UTC).isoformat())
        base = str(pr["base"]["ref"])
        await state.record_merged(
            store,
            MergedPR(
                repo,
                int(pr["number"]),
                str(pr.get("title") or ""),
                base,
                merged_at,
                ok("gitops-bot/signatures"),
                ok("gitops-bot/approvals"),
                failing,
            ),
        )
        if await is_promotion_pr(ctx, repo, pr):
            last = {"number": pr["number"], "title": pr.get("title") or "", "merged_at": merged_at}
            await state.update_env(store, repo, base, last_promotion=last)
    except Exception:
        log.exception("fleet: could not record merged pull request %s#%s", repo, pr.get("number"))


@router.register("pull_request", action="opened")
@router.register("pull_request", action="reopened")
@router.register("pull_request", action="closed")
async def on_promotion_pr(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext
) -> None:
    """Keep the list of open promotion PRs of the environment they promote into."""
    pr = event.data["pull_request"]
    store = _store(ctx)
    if store is None or not await is_promotion_pr(ctx, _repo(event), pr):
        return
    try:
        await state.set_open_promotion(
            store,
            _repo(event),
            str(pr["base"]["ref"]),
            int(pr["number"]),
            {"number": pr["number"], "title": pr.get("title") or "", "gates": ""}
            if pr["state"] == "open"
            else None,
        )
    except Exception:
        log.exception("fleet: could not record promotion PR %s#%s", _repo(event), pr.get("number"))


@router.register("check_run", action="completed")
@router.register("check_run", action="created")
async def on_promotion_check(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext
) -> None:
    """The bot's own promotion check says what the gates wait for; show it beside the PR."""
    run = event.data["check_run"]
    store = _store(ctx)
    if store is None or run.get("name") != PROMOTION_CHECK:
        return
    if f"{(run.get('app') or {}).get('slug')}[bot]" != ctx.bot_login:
        return
    gates = str((run.get("output") or {}).get("title") or run.get("conclusion") or run.get("status") or "")
    try:
        for pr in run.get("pull_requests") or []:
            await state.update_open_promotion(
                store, _repo(event), str(pr["base"]["ref"]), int(pr["number"]), gates
            )
    except Exception:
        log.exception("fleet: could not record the promotion gates of %s", _repo(event))
