"""Signed commits and approval rules on pull requests: check runs `gitops-bot/signatures` and `/approvals`.

Thin glue: extract ids from the event, fetch facts (local git mirror for files, trees,
config, CODEOWNERS and keys, all at the BASE revision; REST for reviews, commits'
verification, memberships and permissions), decide with :mod:`bot.domain.governance`,
then create or update the two check runs on the head sha.

REST calls per event do not depend on the number of commits or reviews (up to 100 each,
one page): 1 list of reviews, 1 list of commits (only with ``trust: github``), 1 list of
check runs for the head (:func:`bot.github.checks.write_check_runs`), at most 2 writes (none
for a run that already shows the result); plus one membership lookup per (team, reviewer)
pair that matters, cached in ``ctx.cache`` for the event, and one permission lookup per
reviewer only when an applicable rule has ``min_permission``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gidgethub
import gidgethub.abc
import gidgethub.sansio
from gidgethub import routing

from bot.domain import escape
from bot.domain.config import CONFIG_PATH, ConfigError
from bot.domain.governance import signatures as sig
from bot.domain.governance.approvals import (
    ApprovalFacts,
    Lookups,
    approvals_settings,
    approvals_summary,
    evaluate,
    plan_lookups,
)
from bot.domain.governance.codeowners import LOCATIONS, CodeOwners, find_codeowners
from bot.domain.promotion.decide import Standing, bot_made
from bot.git import signatures as gitsig
from bot.git.files import changed_paths, git, read_file_at
from bot.github.checks import CheckRun, Conclusion, truncate, write_check_runs
from bot.github.facts import GitHubFacts
from bot.service.context import HandlerContext
from bot.service.records import pr_standing, pull_facts, read_dangers, write_dangers
from bot.service.repos import config_at

log = logging.getLogger(__name__)
router = routing.Router()

SIGNATURES_CHECK = "gitops-bot/signatures"
APPROVALS_CHECK = "gitops-bot/approvals"
MAX_SUMMARY = 65_000  # GitHub's limit for output.summary is 65,535 characters
PER_PAGE = 100
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")


@dataclass(frozen=True, slots=True)
class CheckRunResult:
    """One check run to write: name, conclusion, title and markdown summary."""

    name: str
    conclusion: Conclusion
    title: str
    summary: str


# --------------------------------------------------------------------------- check runs


def _clip(text: str) -> str:
    return truncate(text, MAX_SUMMARY, "\n\n… (truncated: too long for a check run; see the bot logs)")


def _check_run(head_sha: str, result: CheckRunResult) -> CheckRun:
    """Return the completed check run that shows ``result`` on ``head_sha``."""
    return CheckRun(
        name=result.name,
        head_sha=head_sha,
        title=result.title,
        summary=_clip(result.summary),
        conclusion=result.conclusion,
    )


# --------------------------------------------------------------------------- facts


def _trees(git_dir: Path, shas: Iterable[str]) -> dict[str, str]:
    """Resolve commit shas to their tree shas in one ``git cat-file --batch-check`` (missing: absent)."""
    wanted = sorted({s for s in shas if _SHA.fullmatch(s)})
    if not wanted:
        return {}
    out = git(git_dir, "cat-file", "--batch-check", input="".join(f"{s}^{{tree}}\n" for s in wanted).encode())
    trees = {}
    for sha, line in zip(wanted, out.decode().splitlines(), strict=False):
        parts = line.split()
        if len(parts) >= 2 and parts[1] == "tree":
            trees[sha] = parts[0]
    return trees


def _codeowners(git_dir: Path, base_sha: str) -> CodeOwners | None:
    return find_codeowners((p, read_file_at(git_dir, base_sha, p)) for p in LOCATIONS)


# --------------------------------------------------------------------------- evaluation


def _config_failure(exc: ConfigError, base_ref: str) -> list[CheckRunResult]:
    lines = [
        f"`{CONFIG_PATH}` on the base branch `{base_ref}` is not valid, so signatures and approvals "
        "cannot be evaluated. Fix it on the base branch (a pull request cannot change its own rules).",
        "",
        "| Where | Problem | What to do |",
        "|---|---|---|",
    ]
    for f in exc.findings:
        lines.append(
            f"| {escape.code(f'{f.path}:{f.line}', table=True)} | {escape.message(f.message, table=True)} "
            f"| {escape.message(f.hint, table=True)} |"
        )
    text = "\n".join(lines)
    title = "Invalid configuration on the base branch"
    return [
        CheckRunResult(SIGNATURES_CHECK, "failure", title, text),
        CheckRunResult(APPROVALS_CHECK, "failure", title, text),
    ]


async def _signatures(
    gh: gidgethub.abc.GitHubAPI,
    repo: str,
    number: int,
    git_dir: Path,
    base_sha: str,
    head_sha: str,
    config: Mapping[str, Any],
    made: frozenset[str] = frozenset(),
) -> CheckRunResult:
    """The ``gitops-bot/signatures`` run; ``made`` are the commits the bot's record says it created."""
    if "signatures" not in config:
        return CheckRunResult(
            SIGNATURES_CHECK,
            "success",
            "No signature policy configured",
            f"Add a `signatures` section to `{CONFIG_PATH}` on the base branch to require signed commits.",
        )
    settings = sig.signature_settings(config)
    if settings["trust"] == "keys":
        web_flow: frozenset[str] = frozenset()
        if settings["web_flow"] != "verify":  # only GitHub's verification says GitHub made a commit
            listed = gh.getiter(f"/repos/{repo}/pulls/{number}/commits?per_page={PER_PAGE}")
            web_flow = sig.github_web_flow_shas([c async for c in listed])

        def run() -> list[sig.CommitVerdict]:
            with tempfile.TemporaryDirectory(prefix="gitops-bot-trust-") as tmp:
                root = gitsig.materialise_trust_root(git_dir, base_sha, config, Path(tmp))
                return gitsig.verify_range(
                    git_dir, base_sha, head_sha, config, trust_root=root, web_flow_shas=web_flow
                )

        try:
            verdicts = await asyncio.to_thread(run)
        except sig.TrustRootError as exc:
            return CheckRunResult(
                SIGNATURES_CHECK,
                "failure",
                "Signature keys cannot be read",
                f"`signatures` in `{CONFIG_PATH}`: {exc}. Point `allowed_signers` and `gpg_keys` at paths "
                "inside the repository.",
            )
    else:
        commits = [c async for c in gh.getiter(f"/repos/{repo}/pulls/{number}/commits?per_page={PER_PAGE}")]
        paths_by_sha = None
        if settings.get("overrides"):
            shas = [str(c.get("sha")) for c in commits]
            paths_by_sha = await asyncio.to_thread(lambda: {s: gitsig.commit_paths(git_dir, s) for s in shas})
        verdicts = sig.github_verdicts(commits, config, paths_by_sha)
    verdicts = sig.with_bot_made(verdicts, made)
    title, text = sig.signatures_summary(verdicts, settings)
    conclusion: Conclusion = "success" if all(v.ok for v in verdicts) else "failure"
    return CheckRunResult(SIGNATURES_CHECK, conclusion, title, text)


async def _approvals(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    repo: str,
    pr: Mapping[str, Any],
    git_dir: Path,
    config: Mapping[str, Any],
) -> CheckRunResult:
    number = int(pr["number"])
    head_sha = str(pr["head"]["sha"])
    base_sha = str(pr["base"]["sha"])
    base_ref = str(pr["base"]["ref"])
    settings = approvals_settings(config)

    def local() -> tuple[list[str], CodeOwners | None]:
        codeowners = _codeowners(git_dir, base_sha) if settings["codeowners"] else None
        return changed_paths(git_dir, base_sha, head_sha), codeowners

    changed, codeowners = await asyncio.to_thread(local)
    people = GitHubFacts(gh, ctx.cache)
    reviews = await people.reviews(repo, number, PER_PAGE)
    trees = await asyncio.to_thread(_trees, git_dir, [head_sha, *(r.commit_id for r in reviews)])
    plan: Lookups = plan_lookups(config, changed, base_ref, reviews, codeowners)
    members: dict[str, frozenset[str]] = {}
    for team in plan.teams:
        found = [login for login in plan.reviewers if await people.team_member(team, login)]
        members[team] = frozenset(found)
    permissions = {}
    if plan.needs_permissions:
        permissions = {login: (await people.permission(repo, login)).level for login in plan.reviewers}
    facts = ApprovalFacts(
        author=str(pr["user"]["login"]),
        head_sha=head_sha,
        head_tree=trees.get(head_sha, ""),
        base_ref=base_ref,
        changed_paths=tuple(changed),
        reviews=reviews,
        trees=trees,
        team_members=members,
        permissions=permissions,
        codeowners=codeowners,
        dangers=await read_dangers(ctx, repo, number, head_sha),  # the bot's own render, or unknown
    )
    result = evaluate(facts, config)
    title, text = approvals_summary(result)
    extra = people.notes
    if codeowners is not None:
        extra += [f"`{p.path}` line {p.line}: {p.message}. {p.hint}" for p in codeowners.problems]
    if facts.dangers:
        listed = ", ".join(escape.code(d) for d in facts.dangers)
        text += f"\n\n**Dangerous changes** in the rendered diff ({listed}): `when: dangerous` rules apply."
    if extra:
        text += "\n\n**Warnings**\n\n" + "\n".join(f"- {n}" for n in extra)
    return CheckRunResult(APPROVALS_CHECK, "success" if result.ok else "failure", title, text)


def _promotion_approvals(base_ref: str) -> CheckRunResult:
    """A promotion PR carries a change that was already reviewed: its gates decide, not path rules."""
    return CheckRunResult(
        name=APPROVALS_CHECK,
        conclusion="neutral",
        title="Promotion: approvals are a promotion gate",
        summary=(
            f"This PR promotes an already reviewed change into `{base_ref}`. The approvals it needs are "
            "the `approvals` gate of that environment, shown in the `gitops-bot/promotion` check."
        ),
    )


async def evaluate_pull_request(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, pr: Mapping[str, Any]
) -> list[CheckRunResult]:
    """Evaluate signatures and approvals for one open pull request and write both check runs."""
    number = int(pr["number"])
    head_sha = str(pr["head"]["sha"])
    base_sha = str(pr["base"]["sha"])
    git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/pull/{number}/head"])
    try:  # from the base: a PR cannot change its own rules
        config = await config_at(git_dir, base_sha)
    except ConfigError as exc:
        results = _config_failure(exc, str(pr["base"]["ref"]))
        await write_check_runs(
            gh, repo, head_sha, [_check_run(head_sha, r) for r in results], writes=ctx.writes
        )
    else:
        standing, record = await pr_standing(ctx, repo, pr)  # the bot's own record of the branch
        made = bot_made(pull_facts(pr, record), ctx.bot_login)
        signatures = await _signatures(gh, repo, number, git_dir, base_sha, head_sha, config, made)
        # the dangers are read and the run written under one lock: the PR checks re-run this once
        # they recorded the head's dangers, and an evaluation that read none never lands last
        async with ctx.writes.lock("approvals", f"{repo}#{number}"):
            if standing is Standing.PROMOTION:  # the bot's own, as it pushed it; anything else is reviewed
                approvals = _promotion_approvals(str(pr["base"].get("ref", "")))
            else:
                approvals = await _approvals(gh, ctx, repo, pr, git_dir, config)
            results = [signatures, approvals]
            await write_check_runs(
                gh, repo, head_sha, [_check_run(head_sha, r) for r in results], writes=ctx.writes
            )
    log.info(
        "governance: %s#%s %s",
        repo,
        number,
        ", ".join(f"{r.name}={r.conclusion}" for r in results),
    )
    return results


def has_danger_rules(config: Mapping[str, Any]) -> bool:
    """Whether an approval rule of ``config`` has ``when: dangerous``."""
    return any(rule.get("when") == "dangerous" for rule in approvals_settings(config)["rules"])


async def approvals_after_diff(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    repo: str,
    pr: Mapping[str, Any],
    dangers: list[str],
    git_dir: Path,
) -> None:
    """Record the dangers of the head's rendered diff, then evaluate the approvals of ``pr`` again.

    Called by :func:`handlers.pull_request.check_pull_request` with the dangers it computed itself (and
    the mirror it just fetched, holding the PR's head). Only
    when the base config has a `when: dangerous` rule is the approvals run re-evaluated (it waits
    until then); anything else leaves it as the review events wrote it.
    """
    number = int(pr["number"])
    head_sha = str(pr["head"]["sha"])
    await write_dangers(ctx, repo, number, head_sha, dangers)
    try:
        config = await config_at(git_dir, str(pr["base"]["sha"]))
    except ConfigError:
        return  # the governance event reports the broken config
    if not has_danger_rules(config):
        return
    async with ctx.writes.lock("approvals", f"{repo}#{number}"):
        standing, _ = await pr_standing(ctx, repo, pr)
        if standing is Standing.PROMOTION:
            return
        approvals = await _approvals(gh, ctx, repo, pr, git_dir, config)
        await write_check_runs(gh, repo, head_sha, [_check_run(head_sha, approvals)], writes=ctx.writes)
    log.info("governance after the diff: %s#%s %s=%s", repo, number, approvals.name, approvals.conclusion)


async def _on_event(event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext) -> None:
    pr = event.data.get("pull_request") or {}
    if not pr or pr.get("state") == "closed":
        return
    await evaluate_pull_request(gh, ctx, str(event.data["repository"]["full_name"]), pr)


for _action in ("opened", "synchronize", "reopened", "edited"):
    router.add(_on_event, "pull_request", action=_action)
for _action in ("submitted", "edited", "dismissed"):
    router.add(_on_event, "pull_request_review", action=_action)
