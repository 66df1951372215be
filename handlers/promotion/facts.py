"""Fetch: what promotion reads from GitHub, git, the cluster and the bot's own store."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gidgethub.abc

from bot.domain.config import CONFIG_PATH, ConfigError
from bot.domain.governance.approvals import ApprovalFacts, plan_lookups
from bot.domain.promotion import plan
from bot.domain.promotion.approvals import PROMOTION_PATH, approval_results, promotion_rules_config
from bot.domain.promotion.decide import PrRef, Record, Standing
from bot.domain.promotion.environments import Chain, Environment, EnvironmentConfigError, load_chain
from bot.domain.promotion.gates import ApprovalResult, HealthCheck
from bot.git import rewrite
from bot.git.files import GitError, git, rev_parse
from bot.github.facts import GitHubFacts
from bot.health.statuses import NO_STATUS, health_from_github
from bot.service.context import HandlerContext
from bot.service.records import pr_standing
from bot.service.repos import load_config
from handlers.promotion.outcome import Stop

CONFIG_TTL = 60.0


def html(repo: str, number: int) -> str:
    return f"https://github.com/{repo}/pull/{number}"


def pr_url(repo: str, pr: Mapping[str, Any]) -> str:
    return str(pr.get("html_url") or html(repo, int(pr["number"])))


async def get(gh: gidgethub.abc.GitHubAPI, url: str) -> Any:
    return await gh.getitem(url)


async def listing(gh: gidgethub.abc.GitHubAPI, url: str, limit: int = 500) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for item in gh.getiter(url):
        out.append(item)
        if len(out) >= limit:
            break
    return out


async def default_branch(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str) -> str:
    key = f"promotion:default_branch:{repo}"
    if key not in ctx.cache:
        data = await get(gh, f"/repos/{repo}")
        ctx.cache[key] = str(data.get("default_branch") or "main")
    return str(ctx.cache[key])


async def chain(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str) -> tuple[Chain, dict[str, Any]]:
    """The environments and the config, read from the default branch (never from a PR).

    Cached in ``ctx.cache`` for :data:`CONFIG_TTL` seconds, so one delivery or one reconciler
    pass reads it once; an invalid config is never cached.
    """
    key = f"promotion:chain:{repo}"
    hit = ctx.cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < CONFIG_TTL:
        return hit[1]
    default = await default_branch(gh, ctx, repo)
    try:
        config = await load_config(ctx.repos, repo, f"refs/heads/{default}")
        environments = load_chain(config)
    except (ConfigError, EnvironmentConfigError) as exc:
        raise Stop(f"⚠️ `{CONFIG_PATH}` on `{default}` is not valid, so promotion is paused: {exc}") from exc
    if not environments.environments:
        raise Stop(f"Promotion is not configured: add `environments` to `{CONFIG_PATH}` on `{default}`.")
    ctx.cache[key] = (time.monotonic(), (environments, config))
    return environments, config


async def prs_for_head(
    gh: gidgethub.abc.GitHubAPI, repo: str, branch: str, base: str, author: str
) -> list[dict[str, Any]]:
    """The PRs ``author`` (the bot) opened from ``branch`` into ``base``; others' PRs are not the bot's."""
    owner = repo.split("/")[0]
    head = f"{quote(owner)}:{quote(branch, safe='')}"
    url = f"/repos/{repo}/pulls?state=all&head={head}&base={quote(base, safe='')}"
    return [
        p
        for p in await listing(gh, url, limit=20)
        if (p.get("head") or {}).get("ref") == branch and (p.get("user") or {}).get("login") == author
    ]


def pr_refs(repo: str, prs: Sequence[Mapping[str, Any]]) -> list[PrRef]:
    return [
        PrRef(int(p["number"]), str(p.get("state") or ""), bool(p.get("merged_at")), pr_url(repo, p))
        for p in prs
    ]


def branch_head(git_dir: Path, branch: str, pr: Mapping[str, Any] | None) -> str:
    """The bot branch's current sha: from the mirror, else from its PR, else ``""``."""
    sha = git(git_dir, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False).decode().strip()
    if not sha and pr is not None:
        sha = str((pr.get("head") or {}).get("sha") or "")
    return sha


def contains(git_dir: Path, head: str, rev: str) -> bool:
    """Whether commit ``head`` (maybe unknown to the mirror) contains ``rev``."""
    try:
        return rewrite.is_ancestor(git_dir, rev_parse(git_dir, rev), head)
    except GitError:
        return False


def on_branch_after(git_dir: Path, branch: str, sha: str, later: str) -> bool:
    """Whether ``later`` is on ``branch`` and already includes ``sha``."""
    return rewrite.is_ancestor(git_dir, later, f"refs/heads/{branch}") and rewrite.is_ancestor(
        git_dir, sha, later
    )


async def merged_commits(
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
    theirs = await listing(gh, f"/repos/{repo}/pulls/{pr['number']}/commits?per_page=100", limit=250)
    wanted = [str((c.get("commit") or {}).get("message") or "").split("\n", 1)[0] for c in theirs]
    have = [rewrite.commit_info(git_dir, c).subject for c in out]
    return tuple(out) if len(out) == count and have == wanted else (merge_sha,)


async def open_promotions(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, base: str | None = None
) -> list[tuple[dict[str, Any], Standing, Record]]:
    """Open PRs the bot made as promotions (by its records), with their standing.

    The branch name only narrows the search; the bot's record decides. A promotion someone
    else pushed to (:attr:`Standing.LOST`) is listed too, so its status can say why it waits.
    """
    url = f"/repos/{repo}/pulls?state=open&per_page=100"
    if base is not None:
        url += f"&base={quote(base, safe='')}"
    out: list[tuple[dict[str, Any], Standing, Record]] = []
    for p in await listing(gh, url):
        if plan.parse_branch(str((p.get("head") or {}).get("ref") or "")) is None:
            continue
        standing, record = await pr_standing(ctx, repo, p)
        if (
            record is not None
            and record.history is not None
            and standing in (Standing.PROMOTION, Standing.LOST)
        ):
            out.append((p, standing, record))
    return out


async def queue(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, target: Environment
) -> list[plan.Queued]:
    """The promotions in flight into ``target`` (by the bot's records), in merge order."""
    out = []
    for p, _, record in await open_promotions(gh, ctx, repo, target.branch):
        h = record.history
        if h is None or h.target_env != target.name:
            continue
        out.append(plan.Queued(int(p["number"]), target.name, (h.merged_at or "9999", h.source_pr)))
    return out


def kubeconfig(ctx: HandlerContext) -> str | None:
    value = getattr(ctx.settings, "kubeconfig", None)
    return str(value) if value else os.environ.get("KUBECONFIG") or None


async def github_health(
    gh: gidgethub.abc.GitHubAPI, repo: str, contexts: Sequence[str], sha: str
) -> list[HealthCheck]:
    combined = await get(gh, f"/repos/{repo}/commits/{sha}/status")
    runs = await get(gh, f"/repos/{repo}/commits/{sha}/check-runs?per_page=100")
    return health_from_github(contexts, combined.get("statuses") or [], runs.get("check_runs") or [])


async def health(
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
        checks = await github_health(gh, repo, env.gates.contexts, sha)
        missing = [c.name for c in checks if c.detail == NO_STATUS]
        if missing:
            git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/heads/{env.branch}"])
            tip = git(git_dir, "rev-parse", "--verify", "-q", f"refs/heads/{env.branch}", check=False)
            tip_sha = tip.decode().strip()
            if tip_sha and tip_sha != sha and rewrite.is_ancestor(git_dir, sha, tip_sha):
                later = {c.name: c for c in await github_health(gh, repo, missing, tip_sha)}
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

        def later_includes(later: str) -> bool:
            return on_branch_after(mirror, env.branch, sha, later)

        checks += await kubernetes_health(kh, sha, kubeconfig=kubeconfig(ctx), contains=later_includes)
    return checks


async def approvals(
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
    people = GitHubFacts(gh, ctx.cache)
    reviews = await people.reviews(repo, number)
    git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/heads/{pr['head']['ref']}"])
    trees = {}
    for sha in {head_sha, *(r.commit_id for r in reviews)}:
        tree = git(git_dir, "rev-parse", "--verify", "-q", f"{sha}^{{tree}}", check=False).decode().strip()
        if tree:
            trees[sha] = tree
    base_ref = str(pr["base"]["ref"])
    lookups = plan_lookups(scoped, [PROMOTION_PATH], base_ref, reviews, None)
    permissions = {login: await people.role(repo, login) for login in lookups.reviewers}
    members = {
        team: frozenset([login for login in lookups.reviewers if await people.team_member(team, login)])
        for team in lookups.teams
    }
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
