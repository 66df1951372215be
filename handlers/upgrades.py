"""Upgrade campaigns on GitHub: the calendar pass, ``/upgrade``, and driving a campaign's step PRs.

Thin: it gathers facts (the tracking issues, the step PR, health and smoke statuses at the
environment branch's tip, the hold label), lets :mod:`bot.domain.upgrades.campaign` decide,
and applies the actions idempotently:

- a step PR lives on a deterministic bot branch (:func:`~bot.domain.upgrades.tracking.step_branch`);
  an open PR on it is found, never opened twice, and its head commit is recorded in the state;
- the state is written into the tracking issue's body only after the PR exists, so a crash in
  between finds the PR again on the next pass;
- the state is read back only from issues the bot opened (author checked).

Every pass of the reconciler calls :func:`reconcile_upgrades` (the calendar, then every open
campaign), so soak times elapse and health turns green without any new event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gidgethub
import gidgethub.abc
import gidgethub.routing
import gidgethub.sansio

from bot.aws import eks as eks_aws
from bot.domain.commands import code, escape_text
from bot.domain.config import CONFIG_PATH, ConfigError, parse_config
from bot.domain.labels import HOLD_LABEL
from bot.domain.promotion.decide import Record
from bot.domain.promotion.environments import Environment, EnvironmentConfigError, load_chain, parse_duration
from bot.domain.promotion.freeze import active_freeze
from bot.domain.promotion.gates import GateState
from bot.domain.upgrades import campaign as cmp
from bot.domain.upgrades import tracking
from bot.domain.upgrades.command import UpgradeRequest, min_role, role_allows
from bot.domain.upgrades.edits import (
    ARGO_CLUSTER_LABEL,
    EditError,
    argo_cluster_secrets,
    registry_add,
    registry_remove,
    rollback_changes,
    step_parts,
)
from bot.domain.upgrades.markdown import plan_markdown
from bot.domain.upgrades.plan import PlanError, UpgradeSettings, due_upgrades, parse_target
from bot.domain.validate.eks import format_minor
from bot.git.files import GIT_ENV, GitError, git, read_file_at, rev_parse
from bot.git.rewrite import BOT_EMAIL, BOT_NAME
from bot.github.facts import GitHubFacts
from bot.health.statuses import health_from_github
from bot.prchecks.build import UsageError
from bot.service.context import HandlerContext
from bot.service.records import read_record, write_record
from bot.upgrades.facts import fleet_at, load_cluster, own_folder_files, plan_cluster, step_targets
from handlers.promotion import facts as promotion_facts
from handlers.promotion.outcome import Stop

log = logging.getLogger(__name__)
Parts = list[tuple[str, dict[str, str | None]]]  # a step's commits, in order: (subject, files)

CALENDAR_INTERVAL = float(os.environ.get("GITOPS_BOT_UPGRADE_CALENDAR_INTERVAL", 24 * 3600))
"""Seconds between two calendar passes of a repository (daily; each pass is idempotent anyway)."""
_LAST_CALENDAR: dict[str, float] = {}


@dataclass
class UpgradeOutcome:
    """What ``/upgrade`` did, as a short markdown answer."""

    ok: bool
    message: str
    url: str | None = None


class _Stop(Exception):
    def __init__(self, message: str, ok: bool = False, url: str | None = None) -> None:
        super().__init__(message)
        self.ok, self.url = ok, url


def _path(repo: str) -> str:
    owner, _, name = repo.partition("/")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


def _key(ctx: HandlerContext) -> bytes:
    secret = getattr(ctx.settings, "webhook_secret", None)
    return secret if isinstance(secret, bytes) and secret else os.urandom(32)


# --- GitHub facts --------------------------------------------------------------------------


async def tracked_issues(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str
) -> list[tracking.TrackedIssue]:
    """The bot's own upgrade issues, open and closed."""
    url = f"{_path(repo)}/issues?state=all&labels={quote(tracking.LABEL, safe='')}&per_page=100"
    items = [dict(i) async for i in gh.getiter(url)]
    return tracking.tracked(items, ctx.bot_login)


def _config(git_dir: Path, rev: str) -> dict[str, Any]:
    try:
        return parse_config(read_file_at(git_dir, rev, CONFIG_PATH) or "")
    except ConfigError:
        return {"version": 1}


def _section(config: Mapping[str, Any]) -> dict[str, Any]:
    section = config.get("upgrades")
    return dict(section) if isinstance(section, dict) else {}


def _env(config: dict[str, Any], env: str) -> Environment | None:
    try:
        return load_chain(config).by_name(env)
    except EnvironmentConfigError:
        return None


def _env_branch(config: dict[str, Any], env: str) -> str:
    found = _env(config, env)
    return found.branch if found is not None else f"env/{env}"


def _rollback_on_red(config: dict[str, Any]) -> bool:
    try:
        return load_chain(config).settings.rollback_on_red
    except EnvironmentConfigError:
        return False


async def _config_now(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str) -> dict[str, Any]:
    """The config on the default branch, through the promotion facts (cached per pass); {} when unusable."""
    try:
        return (await promotion_facts.chain(gh, ctx, repo))[1]
    except Stop:
        return {}


def _frozen(env: Environment | None, now: datetime) -> bool:
    """A freeze window of the environment covers ``now`` (an unreadable window counts: fail closed)."""
    if env is None or not env.gates.freeze:
        return False
    try:
        return active_freeze(env.gates.freeze, now) is not None
    except EnvironmentConfigError:
        return True


async def _statuses(gh: gidgethub.abc.GitHubAPI, repo: str, sha: str) -> tuple[list[Any], list[Any]]:
    combined = await gh.getitem(f"{_path(repo)}/commits/{sha}/status")
    runs = await gh.getitem(f"{_path(repo)}/commits/{sha}/check-runs?per_page=100")
    return list(combined.get("statuses") or []), list(runs.get("check_runs") or [])


def _state_of(checks: list[Any]) -> str:
    states = {c.state for c in checks}
    if GateState.FAIL in states:
        return "red" if checks else "green"
    if not checks or states == {GateState.PASS}:
        return "green"
    return "pending"


def _signal_id(context: str, statuses: list[Any], runs: list[Any]) -> str:
    """Which signal named ``context`` is on the commit: GitHub's ids of its newest status and check
    run (a re-run posts a new one, so a new id means a new verdict)."""
    status = max((int(s.get("id") or 0) for s in statuses if s.get("context") == context), default=0)
    run = max((int(r.get("id") or 0) for r in runs if r.get("name") == context), default=0)
    return f"status:{status},check:{run}" if status or run else ""


async def _pr_facts(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, number: int | None, head_sha: str
) -> tuple[str, datetime | None, bool]:
    if not number:
        return "missing", None, True
    try:
        pr = await gh.getitem(f"{_path(repo)}/pulls/{number}")
    except gidgethub.BadRequest as exc:
        if exc.status_code == 404:
            return "missing", None, True
        raise
    by_bot = tracking.by_bot(pr, ctx.bot_login) and (
        not head_sha or (pr.get("head") or {}).get("sha") == head_sha
    )
    if pr.get("merged_at"):
        merged = datetime.fromisoformat(str(pr["merged_at"]).replace("Z", "+00:00"))
        return "merged", merged, by_bot
    return ("open" if pr.get("state") == "open" else "closed"), None, by_bot


def _smoke_context(config: dict[str, Any], c: cmp.Campaign) -> str:
    bg = _section(config).get("blue_green") or {}
    return str(bg.get("smoke_context") or "smoke/{cluster}").replace("{cluster}", c.green or c.cluster)


def _signal_contexts(config: dict[str, Any], c: cmp.Campaign) -> set[str]:
    """The status and check-run names that can move ``c`` on: its clusters' health, green's smoke."""
    env = _env(config, c.env)
    contexts = env.gates.contexts if env is not None else ()
    names = {c.cluster, c.green} - {""}
    return {x.replace("{cluster}", n) for x in contexts for n in names} | {_smoke_context(config, c)}


def _may_signal(config: dict[str, Any], context: str) -> bool:
    """Whether ``context`` matches a health context of some environment, or the smoke context."""
    try:
        envs = load_chain(config).environments
    except EnvironmentConfigError:
        envs = ()
    bg = _section(config).get("blue_green") or {}
    patterns = [x for e in envs for x in e.gates.contexts] + [
        str(bg.get("smoke_context") or "smoke/{cluster}")
    ]
    return any(re.fullmatch(re.escape(p).replace(re.escape("{cluster}"), ".+"), context) for p in patterns)


async def gather(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    repo: str,
    issue: Mapping[str, Any],
    c: cmp.Campaign,
    config: dict[str, Any],
    now: datetime,
) -> cmp.Facts:
    """The facts of one decision: the step PR, health and smoke at the environment branch's tip, a hold."""
    branch = _env_branch(config, c.env)
    tip = str((await gh.getitem(f"{_path(repo)}/branches/{quote(branch, safe='')}"))["commit"]["sha"])
    statuses, runs = await _statuses(gh, repo, tip)
    env = _env(config, c.env)
    contexts = env.gates.contexts if env is not None else ()
    health: dict[str, cmp.Health] = {}
    for name in {c.cluster, c.green} - {""}:
        wanted = [x.replace("{cluster}", name) for x in contexts]
        state = _state_of(health_from_github(wanted, statuses, runs))
        health[name] = "red" if state == "red" else ("green" if state == "green" else "pending")
    bg = _section(config).get("blue_green") or {}
    smoke_checks = health_from_github([_smoke_context(config, c)], statuses, runs)
    smoke_state = smoke_checks[0].state if smoke_checks else GateState.PENDING
    smoke: Any = {GateState.PASS: "success", GateState.FAIL: "failure"}.get(smoke_state, "pending")
    smoke_id = _signal_id(_smoke_context(config, c), statuses, runs)
    pr_state, merged_at, by_bot = await _pr_facts(gh, ctx, repo, c.pr, c.head_sha)
    rollback_state, _, _ = await _pr_facts(gh, ctx, repo, c.rollback_pr, "")
    labels = {str(lbl.get("name")) for lbl in issue.get("labels") or [] if isinstance(lbl, Mapping)}
    soak = (
        parse_duration(str(bg.get("soak") or "30m"))
        if c.strategy == "blue-green"
        else (env.gates.soak if env is not None else timedelta(0))
    )
    return cmp.Facts(
        now=now,
        soak=soak,
        pr_state=pr_state,  # type: ignore[arg-type]
        pr_merged_at=merged_at,
        pr_by_bot=by_bot,
        health=health,
        smoke=smoke,
        smoke_id=smoke_id,
        held=HOLD_LABEL in labels or _frozen(env, now),
        rollback_state=rollback_state,  # type: ignore[arg-type]
    )


# --- writes --------------------------------------------------------------------------------


def commit_files(git_dir: Path, parent: str, changes: Mapping[str, str | None], message: str) -> str:
    """Commit ``changes`` (``None`` deletes) on top of ``parent`` in a bare repository; return the sha.

    Deterministic: the bot is author and committer, dated as the parent, so the same step on
    the same tip gives the same commit (a retried pass pushes nothing new).
    """
    with tempfile.TemporaryDirectory() as tmp:
        env = {**GIT_ENV, "GIT_INDEX_FILE": os.path.join(tmp, "index")}

        def run(*args: str, data: bytes | None = None) -> str:
            proc = subprocess.run(
                ["git", f"--git-dir={git_dir}", *args], input=data, capture_output=True, env=env, check=False
            )
            if proc.returncode != 0:
                raise GitError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
            return proc.stdout.decode().strip()

        run("read-tree", parent)
        entries = []
        for path, text in sorted(changes.items()):
            if text is None:  # mode 0 removes the entry (--force-remove needs a work tree)
                entries.append(f"0 {'0' * 40}\t{path}")
            else:
                blob = run("hash-object", "-w", "--stdin", data=text.encode("utf-8"))
                entries.append(f"100644 {blob}\t{path}")
        run("update-index", "--index-info", data=("\n".join(entries) + "\n").encode("utf-8"))
        tree = run("write-tree")
        when = git(git_dir, "show", "-s", "--format=%cd", "--date=raw", parent).decode().strip()
        ident = {
            "GIT_AUTHOR_NAME": BOT_NAME,
            "GIT_AUTHOR_EMAIL": BOT_EMAIL,
            "GIT_AUTHOR_DATE": f"@{when}",
            "GIT_COMMITTER_NAME": BOT_NAME,
            "GIT_COMMITTER_EMAIL": BOT_EMAIL,
            "GIT_COMMITTER_DATE": f"@{when}",
        }
        env.update(ident)
        return run("commit-tree", tree, "-p", parent, data=message.encode("utf-8"))


async def _open_pr_for(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    repo: str,
    *,
    branch: str,
    base: str,
    title: str,
    body: str,
    changes_of: Any,
) -> tuple[int, str, str]:
    """Find the open PR on ``branch``, or commit the step's changes and open it; ``(number, head, url)``.

    ``changes_of(git_dir, tip)`` gives the commits to make, in order: ``(subject, files)``.
    """
    owner = repo.split("/", 1)[0]
    url = f"{_path(repo)}/pulls?state=open&head={quote(f'{owner}:{branch}', safe='')}&per_page=10"
    found = [p async for p in gh.getiter(url) if (p.get("head") or {}).get("ref") == branch]
    if found:
        pr = found[0]
        return int(pr["number"]), str(pr["head"]["sha"]), str(pr.get("html_url") or "")
    git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/heads/{base}"])
    tip = rev_parse(git_dir, f"refs/heads/{base}")
    parts = [
        (subject, files) for subject, files in await asyncio.to_thread(changes_of, git_dir, tip) if files
    ]
    if not parts:
        raise _Stop(f"`{base}` already has this step's change; nothing to open.")
    made: list[str] = []
    sha = tip
    for subject, files in parts:
        message = f"{title}\n\n{body}" if len(parts) == 1 else f"{subject}\n\n{title}"
        sha = await asyncio.to_thread(commit_files, git_dir, sha, files, message)
        made.append(sha)
    # recorded before the push, so the push's own webhook already knows the commits as the bot's
    record = await read_record(ctx, repo, branch) or Record("upgrade", branch, base)
    if record.kind == "upgrade" and record.base == base:
        await write_record(ctx, repo, record.with_push(sha, made))
    await ctx.repos.push(repo, [f"{sha}:refs/heads/{branch}"], force=True)
    pr = await gh.post(
        f"{_path(repo)}/pulls",
        data={"title": title, "head": branch, "base": base, "body": body, "maintainer_can_modify": False},
    )
    await gh.post(f"{_path(repo)}/issues/{pr['number']}/labels", data={"labels": [tracking.LABEL]})
    return int(pr["number"]), sha, str(pr.get("html_url") or "")


def _files_for(
    git_dir: Path, sha: str, c: cmp.Campaign, config: Mapping[str, Any]
) -> tuple[Any, dict[str, str]]:
    """What a step edits on the environment branch at ``sha``; the traffic objects are the
    campaign's ``config``'s (the default branch's), not the environment branch's copy."""
    fleet = fleet_at(git_dir, sha)
    where = step_targets(fleet, c.cluster, config)
    if c.addons:  # the versions the plan chose (AWS's defaults when it answered)
        where = replace(where, addon_versions=c.addon_versions(where.addon_versions or {}))
    if c.strategy == "blue-green":  # what green copies of blue, and the decommission removes
        own = own_folder_files(git_dir, sha, where.folder, c.cluster, where.request_path)
        argo = _argo_secret_files(git_dir, sha, c.cluster, set(own))
        where = replace(where, folder_files=own, argo_secrets=argo)
    paths = {where.request_path, where.registry_path, *(r.path for r in where.control_plane)}
    paths |= set(where.folder_files) | set(where.argo_secrets)
    paths |= {r.path for r in where.nodegroups} | {r.path for r in (where.addons or {}).values()}
    paths |= {t.path for t in where.traffic}
    files = {p: t for p in sorted(paths - {""}) if (t := read_file_at(git_dir, sha, p)) is not None}
    return where, files


def _argo_secret_files(git_dir: Path, sha: str, cluster: str, skip: set[str]) -> tuple[str, ...]:
    """The YAML files at ``sha`` (outside ``skip``) with an Argo CD cluster Secret registering ``cluster``."""
    out = git(git_dir, "grep", "-l", "-F", ARGO_CLUSTER_LABEL, sha, "--", "*.yaml", "*.yml", check=False)
    found = [
        line.split(":", 1)[1] for line in out.decode("utf-8", errors="replace").splitlines() if ":" in line
    ]
    return tuple(
        p
        for p in sorted(set(found) - skip)
        if argo_cluster_secrets(read_file_at(git_dir, sha, p) or "", cluster)
    )


async def _apply(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    repo: str,
    issue_number: int,
    c: cmp.Campaign,
    actions: list[cmp.Action],
    config: dict[str, Any],
) -> tuple[cmp.Campaign, list[str]]:
    """Open the PRs the actions ask for; return the campaign with them recorded and what to say."""
    base = _env_branch(config, c.env)
    said: list[str] = []
    for action in actions:
        if isinstance(action, cmp.Say):
            said.append(action.text)
        elif isinstance(action, cmp.OpenStepPR):
            step, index = action.step, action.index

            def changes(git_dir: Path, tip: str, step: cmp.CampaignStep = step, c: cmp.Campaign = c) -> Parts:
                where, files = _files_for(git_dir, tip, c, config)
                return step_parts(c, step, where, files)

            title = f"Upgrade {c.cluster} ({index + 1}/{len(c.steps)}): {step.title}"
            body = (
                f"Step {index + 1} of the upgrade of {code(c.cluster)} to {c.target}, "
                f"tracked in #{issue_number}.\n\n"
                "Checked and gated like any other change to this environment; the next step opens after "
                "this one merged and soaked healthy."
            )
            try:
                number, sha, url = await _open_pr_for(
                    gh,
                    ctx,
                    repo,
                    branch=tracking.step_branch(c, index),
                    base=base,
                    title=title,
                    body=body,
                    changes_of=changes,
                )
            except (EditError, _Stop) as exc:
                c = replace(c, phase="paused", reason=str(exc))
                said.append(f"Paused: step {index + 1} cannot be written: {code(str(exc))}.")
                break
            c = cmp.opened(c, number, sha)
            said.append(f"Opened step {index + 1}: {url or f'#{number}'}")
        elif isinstance(action, cmp.OpenRollbackPR):
            weight = action.weight

            def back(git_dir: Path, tip: str, weight: int = weight, c: cmp.Campaign = c) -> Parts:
                where, files = _files_for(git_dir, tip, c, config)
                return [("", rollback_changes(c, where, files, weight))]

            title = f"Roll back traffic of {c.cluster} to {100 - weight}% ({c.green} {weight}%)"
            body = (
                f"Restores the last good traffic weights of the upgrade in #{issue_number}: {action.reason}."
            )
            try:
                number, _, url = await _open_pr_for(
                    gh,
                    ctx,
                    repo,
                    branch=tracking.step_branch(c, c.current, rollback=True),
                    base=base,
                    title=title,
                    body=body,
                    changes_of=back,
                )
            except _Stop as exc:
                c = replace(c, phase="paused", reason=str(exc))
                said.append(f"Paused: {exc}")
                break
            c = cmp.rollback_opened(c, number)
            said.append(f"Rolling back: {action.reason}. {url or f'#{number}'}")
            if _rollback_on_red(config):
                await _merge(gh, repo, number)
        elif isinstance(action, cmp.OpenRegistryPR):
            said.extend(await _registry_follow_up(gh, ctx, repo, issue_number, c, base))
    return c, said


async def _registry_follow_up(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    repo: str,
    issue_number: int,
    c: cmp.Campaign,
    env_branch: str,
) -> list[str]:
    """After a blue/green campaign: a PR on the default branch whose registry names green, not blue.

    The steps edited the environment branch's copy of ``.github/gitops-bot.yml``; where the default
    branch is another branch its registry (what the dashboard and the calendar read) still lists
    blue. Nothing to do when they are one branch or the default branch's registry is right already.
    """
    default = await promotion_facts.default_branch(gh, ctx, repo)
    if default == env_branch:
        return []

    def swap(git_dir: Path, tip: str) -> Parts:
        text = read_file_at(git_dir, tip, CONFIG_PATH)
        if text is None:
            return []
        new = registry_remove(registry_add(text, c.cluster, c.green), c.cluster)
        return [("", {CONFIG_PATH: new})] if new != text else []

    title = f"Upgrade {c.cluster}: the registry on {default} names {c.green} instead of {c.cluster}"
    body = (
        f"The upgrade in #{issue_number} replaced {code(c.cluster)} by {code(c.green)} on "
        f"{code(env_branch)}. This updates the `clusters:` registry in `{CONFIG_PATH}` on "
        f"{code(default)} to match, so the calendar and the fleet dashboard follow the new cluster. "
        "Reviewed like any change to the configuration."
    )
    branch = f"{tracking.STEP_BRANCH_PREFIX}{c.cluster}-{c.target}/registry"
    try:
        _, _, url = await _open_pr_for(
            gh, ctx, repo, branch=branch, base=default, title=title, body=body, changes_of=swap
        )
    except (EditError, _Stop):
        return []  # the default branch already names green (or has no registry): nothing to follow up
    return [f"The registry on {code(default)} still named {code(c.cluster)}: {url}"]


async def _merge(gh: gidgethub.abc.GitHubAPI, repo: str, number: int) -> None:
    try:
        await gh.put(f"{_path(repo)}/pulls/{number}/merge", data={"merge_method": "merge"})
    except gidgethub.BadRequest as exc:  # not mergeable yet: a person merges it, or the next pass
        log.info("could not merge rollback #%s of %s: %s", number, repo, exc)


async def _save(
    gh: gidgethub.abc.GitHubAPI, repo: str, issue: Mapping[str, Any], c: cmp.Campaign, said: list[str]
) -> None:
    """Write the new state into the bot's own issue body (first), then say what happened."""
    old = str(issue.get("body") or "")
    new = tracking.with_state(old, c)
    if new != old:
        patch: dict[str, Any] = {"body": new}
        if c.phase == "done":
            patch["state"] = "closed"
        await gh.patch(f"{_path(repo)}/issues/{int(issue['number'])}", data=patch)
    if said:
        await gh.post(
            f"{_path(repo)}/issues/{int(issue['number'])}/comments", data={"body": "\n\n".join(said)}
        )


def campaign_lock(ctx: HandlerContext, repo: str) -> AbstractAsyncContextManager[None]:
    """The lock of every read-decide-write of a repository's campaigns and calendar.

    The reconciler's pass, the step PRs' webhooks and commands run concurrently (and on several
    replicas: the store's lock is shared); unserialised, two passes read the same state, both
    opened the step's PR, and the later body write put back an older state. Not reentrant.
    """
    return ctx.writes.lock("upgrades", repo)


async def advance(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    repo: str,
    issue_number: int,
    *,
    now: datetime | None = None,
    resume: bool = False,
) -> cmp.Campaign | None:
    """Decide and act once for the campaign of the bot's issue ``issue_number``; return its new state."""
    async with campaign_lock(ctx, repo):
        return await _advance(gh, ctx, repo, issue_number, now=now, resume=resume)


async def _advance(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    repo: str,
    issue_number: int,
    *,
    now: datetime | None = None,
    resume: bool = False,
) -> cmp.Campaign | None:
    issue = dict(await gh.getitem(f"{_path(repo)}/issues/{issue_number}"))
    found = tracking.tracked([issue], ctx.bot_login)
    if not found or not found[0].open or found[0].campaign is None:
        return None
    c = found[0].campaign
    config = await _config_now(gh, ctx, repo)
    if resume:
        new, actions = cmp.resume(c)
    else:
        facts = await gather(gh, ctx, repo, issue, c, config, now or datetime.now(UTC))
        new, actions = cmp.decide(c, facts)
    if new == c and not actions:
        return c
    new, said = await _apply(gh, ctx, repo, issue_number, new, actions, config)
    await _save(gh, repo, issue, new, said)
    return new


# --- start ---------------------------------------------------------------------------------


async def start_upgrade(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    *,
    repo: str,
    request: UpgradeRequest,
    user: str,
    today: date | None = None,
) -> UpgradeOutcome:
    """``/upgrade``: start (or resume) the campaign of ``request.cluster``; one per cluster at a time."""
    try:
        async with campaign_lock(ctx, repo):
            return await _start(gh, ctx, repo=repo, request=request, user=user, today=today)
    except _Stop as exc:
        return UpgradeOutcome(exc.ok, str(exc), exc.url)


async def _start(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    *,
    repo: str,
    request: UpgradeRequest,
    user: str,
    today: date | None,
) -> UpgradeOutcome:
    issues = await tracked_issues(gh, ctx, repo)
    current = tracking.running(issues, request.cluster)
    default = await promotion_facts.default_branch(gh, ctx, repo)
    git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/heads/{default}"])
    sha = rev_parse(git_dir, f"refs/heads/{default}")
    config = _config(git_dir, sha)
    if not isinstance(config.get("upgrades"), dict):
        raise _Stop(
            f"Cluster upgrades are off in this repository: add an `upgrades:` section (`upgrades: {{}}` for "
            f"the defaults) to `{CONFIG_PATH}` on `{default}`. See docs/upgrades.md."
        )
    try:
        facts, fleet = await asyncio.to_thread(
            load_cluster, git_dir, sha, request.cluster, secret_key=_key(ctx)
        )
    except UsageError as exc:
        raise _Stop(f"{exc}. Usage: `/upgrade <cluster> [to <version>] [in-place|blue-green]`") from exc
    needed = min_role(facts.env, _section(config))
    role = await GitHubFacts(gh, ctx.cache).role(repo, user)
    if not role_allows(role, needed):
        raise _Stop(
            f"Upgrading a cluster of `{facts.env}` needs the *{needed}* role on this repository "
            f"(yours: *{role}*; `upgrades.min_role`). Nothing was done."
        )
    if current is not None and current.campaign is not None:
        if current.campaign.phase == "paused":
            state = await _advance(gh, ctx, repo, current.number, resume=True)
            where = f" ({state.phase})" if state else ""
            return UpgradeOutcome(
                True, f"Resumed the upgrade of {code(request.cluster)}{where}: {current.url}", current.url
            )
        raise _Stop(
            f"{code(request.cluster)} already has an upgrade under way: "
            f"{current.url or f'#{current.number}'}. "
            "One campaign per cluster at a time; `/hold` it there, or wait for it to finish.",
            url=current.url,
        )
    aws = eks_aws.session_for(config)  # eks.online: AWS's calendar and add-on versions
    catalog = await asyncio.to_thread(eks_aws.catalog_for, config, aws)
    section = _section(config)
    strategy = request.strategy or str(section.get("strategy") or "in-place")
    try:
        target = parse_target(request.target, catalog) if request.target else None
        plan = await asyncio.to_thread(
            plan_cluster,
            facts,
            catalog,
            today or date.today(),
            to=target,
            strategy=strategy,  # type: ignore[arg-type]
            settings=UpgradeSettings.from_config(fleet.config),
            aws=aws,
        )
    except PlanError as exc:
        raise _Stop(f"No upgrade: {exc}.") from exc
    if not plan.hops:
        raise _Stop(
            f"{code(request.cluster)} already runs {format_minor(plan.from_version)}; nothing to upgrade.",
            ok=True,
        )
    campaign = cmp.start(plan)
    md = plan_markdown(plan)
    if current is None:
        created = await gh.post(
            f"{_path(repo)}/issues",
            data={
                "title": tracking.title(campaign.cluster, campaign.target, campaign.strategy),
                "body": tracking.body(campaign.cluster, campaign.target, md, campaign, started_by=user),
                "labels": [tracking.LABEL],
            },
        )
        number, url = int(created["number"]), str(created.get("html_url") or "")
    else:
        # the calendar's issue: the campaign starts in it, with this plan (its target may differ)
        number, url = current.number, current.url
        await gh.patch(
            f"{_path(repo)}/issues/{number}",
            data={
                "title": tracking.title(campaign.cluster, campaign.target, campaign.strategy),
                "body": tracking.with_state(current.body, campaign, started_by=user, plan_md=md),
            },
        )
    state = await _advance(gh, ctx, repo, number)
    pr = f" Step 1 is #{state.pr}." if state is not None and state.pr else ""
    return UpgradeOutcome(
        True, f"Started the upgrade of {code(request.cluster)} to {campaign.target}: {url}.{pr}", url
    )


# --- calendar and reconcile ----------------------------------------------------------------


async def calendar_pass(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, *, today: date | None = None
) -> list[int]:
    """Open an issue with the plan (or the campaign, with ``auto_open``) for each cluster due; return them."""
    async with campaign_lock(ctx, repo):  # two replicas' passes must not both open a cluster's issue
        return await _calendar_pass(gh, ctx, repo, today=today)


async def _calendar_pass(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, *, today: date | None
) -> list[int]:
    default = await promotion_facts.default_branch(gh, ctx, repo)
    git_dir = await ctx.repos.git_dir(repo, refs=[f"refs/heads/{default}"])
    sha = rev_parse(git_dir, f"refs/heads/{default}")
    config = _config(git_dir, sha)
    section = _section(config)
    if not isinstance(config.get("upgrades"), dict):
        return []
    today = today or date.today()
    aws = eks_aws.session_for(config)  # eks.online: AWS's calendar and add-on versions
    catalog = await asyncio.to_thread(eks_aws.catalog_for, config, aws)
    fleet = await asyncio.to_thread(fleet_at, git_dir, sha)
    settings = UpgradeSettings.from_config(config)
    due = due_upgrades(fleet.clusters.values(), catalog, today, settings.lead_time_days)
    issues = await tracked_issues(gh, ctx, repo)
    chosen = tracking.calendar_choice(due, issues, int(section.get("max_open", 3)))
    strategy = str(section.get("strategy") or "in-place")
    opened = []
    for d in chosen:
        facts, _ = await asyncio.to_thread(load_cluster, git_dir, sha, d.cluster, secret_key=_key(ctx))
        plan = await asyncio.to_thread(
            plan_cluster,
            facts,
            catalog,
            today,
            to=d.target,
            strategy=strategy,  # type: ignore[arg-type]
            settings=settings,
            aws=aws,
        )
        c = cmp.start(plan) if section.get("auto_open") else None
        created = await gh.post(
            f"{_path(repo)}/issues",
            data={
                "title": tracking.title(d.cluster, format_minor(d.target), strategy),
                "body": tracking.body(
                    d.cluster, format_minor(d.target), plan_markdown(plan), c, why=tracking.why_due(d)
                ),
                "labels": [tracking.LABEL],
            },
        )
        opened.append(int(created["number"]))
        if c is not None:
            await _advance(gh, ctx, repo, int(created["number"]))
    return opened


async def reconcile_upgrades(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str) -> list[str]:
    """One reconciler pass: the calendar, then every open campaign once. Returns one line per error."""
    errors: list[str] = []
    if not isinstance((await _config_now(gh, ctx, repo)).get("upgrades"), dict):
        return errors  # upgrades are off here (no section, or no usable config)
    try:
        if time.monotonic() - _LAST_CALENDAR.get(repo, -CALENDAR_INTERVAL) >= CALENDAR_INTERVAL:
            await calendar_pass(gh, ctx, repo)
            _LAST_CALENDAR[repo] = time.monotonic()
    except (gidgethub.GitHubException, GitError, PlanError, UsageError) as exc:
        errors.append(f"{repo} upgrade calendar: {exc}")
    for issue in await tracked_issues(gh, ctx, repo):
        if issue.open and issue.campaign is not None:
            try:
                await advance(gh, ctx, repo, issue.number)
            except (gidgethub.GitHubException, GitError) as exc:
                errors.append(f"{repo}#{issue.number}: {exc}")
    return errors


async def campaign_command(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, issue_number: int, name: str, reason: str
) -> UpgradeOutcome:
    """``/hold``, ``/unhold`` or ``/rollback`` on a tracking issue: pause, resume, roll the traffic back."""
    async with campaign_lock(ctx, repo):
        return await _campaign_command(gh, ctx, repo, issue_number, name, reason)


async def _campaign_command(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, issue_number: int, name: str, reason: str
) -> UpgradeOutcome:
    issue = dict(await gh.getitem(f"{_path(repo)}/issues/{issue_number}"))
    found = tracking.tracked([issue], ctx.bot_login)
    c = found[0].campaign if found else None
    if c is None or not found[0].open:
        return UpgradeOutcome(
            False, "This issue has no upgrade under way; comment `/upgrade <cluster>` to start one."
        )
    if name == "hold":
        await gh.post(f"{_path(repo)}/issues/{issue_number}/labels", data={"labels": [HOLD_LABEL]})
        return UpgradeOutcome(
            True, f"On hold (label `{HOLD_LABEL}`): no step of this upgrade moves on until `/unhold`."
        )
    if name == "unhold":
        try:
            await gh.delete(f"{_path(repo)}/issues/{issue_number}/labels/{quote(HOLD_LABEL, safe='')}")
        except gidgethub.BadRequest as exc:
            if exc.status_code != 404:
                raise
            return UpgradeOutcome(True, "This upgrade was not on hold; nothing to release.")
        await _advance(gh, ctx, repo, issue_number)
        return UpgradeOutcome(True, f"Hold released; the upgrade of {code(c.cluster)} carries on.")
    if c.strategy != "blue-green" or c.phase == "rolling-back":
        what = "is already rolling back" if c.phase == "rolling-back" else "moves no traffic (in place)"
        return UpgradeOutcome(
            False,
            f"This upgrade {what}, so there are no weights to restore. "
            "To undo an in-place step, comment `/rollback` on its merged PR.",
        )
    why = f"/rollback: {escape_text(reason)}"  # a person's words: escaped once, here
    rolling = replace(c, phase="rolling-back", reason=why)
    config = await _config_now(gh, ctx, repo)
    new, said = await _apply(
        gh, ctx, repo, issue_number, rolling, [cmp.OpenRollbackPR(c.good_weight, why)], config
    )
    await _save(gh, repo, issue, new, said)
    url = f" #{new.rollback_pr}" if new.rollback_pr else ""
    return UpgradeOutcome(True, f"Rolling the traffic back to {c.good_weight}% on {code(c.green)}:{url}.")


# --- webhooks ------------------------------------------------------------------------------

router = gidgethub.routing.Router()


async def advance_for_pr(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, number: int) -> bool:
    """Advance the campaign whose step or rollback PR is ``number``; False when none is."""
    if not isinstance((await _config_now(gh, ctx, repo)).get("upgrades"), dict):
        return False
    for issue in await tracked_issues(gh, ctx, repo):
        c = issue.campaign
        if issue.open and c is not None and number in (c.pr, c.rollback_pr):
            await advance(gh, ctx, repo, issue.number)
            return True
    return False


@router.register("pull_request", action="closed")
async def on_step_pr_closed(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext
) -> None:
    """A bot step PR merged or closed: move its campaign on now instead of at the next reconcile pass."""
    pr = event.data.get("pull_request") or {}
    if not str((pr.get("head") or {}).get("ref") or "").startswith(tracking.STEP_BRANCH_PREFIX):
        return
    if not tracking.by_bot(pr, ctx.bot_login):
        return  # the branch name is anyone's to choose; only the bot's PRs are steps
    await advance_for_pr(gh, ctx, str(event.data["repository"]["full_name"]), int(pr["number"]))


async def advance_for_signal(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, sha: str, context: str | None
) -> list[int]:
    """Advance the campaigns a health or smoke signal on ``sha`` concerns; return their issues.

    Only campaigns waiting on signals (soaking, smoke) whose environment branch's tip is ``sha``,
    and, for a named ``context``, only those watching it (``None``: a check suite, any). The
    reconciler's pass would get there too; this is at once.
    """
    config = await _config_now(gh, ctx, repo)
    if not isinstance(config.get("upgrades"), dict):
        return []
    if context is not None and not _may_signal(config, context):
        return []  # CI's statuses and the like: no listing of the issues for them
    moved: list[int] = []
    tips: dict[str, str] = {}
    for issue in await tracked_issues(gh, ctx, repo):
        c = issue.campaign
        if not issue.open or c is None or c.phase not in ("soaking", "smoke"):
            continue
        if context is not None and context not in _signal_contexts(config, c):
            continue
        branch = _env_branch(config, c.env)
        if branch not in tips:
            answer = await gh.getitem(f"{_path(repo)}/branches/{quote(branch, safe='')}")
            tips[branch] = str(answer["commit"]["sha"])
        if tips[branch] == sha:
            await advance(gh, ctx, repo, issue.number)
            moved.append(issue.number)
    return moved


def _by_us(item: Mapping[str, Any], ctx: HandlerContext) -> bool:
    app = (item.get("app") or {}).get("slug") or ""
    return bool(app) and f"{app}[bot]" == ctx.bot_login


@router.register("status")
async def on_status(event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext) -> None:
    """Flux's health or the smoke tests reported: a campaign waiting on it moves on now."""
    data = event.data
    if data.get("state") in ("success", "failure", "error"):
        repo = str(data["repository"]["full_name"])
        await advance_for_signal(gh, ctx, repo, str(data["sha"]), str(data.get("context") or ""))


@router.register("check_run", action="completed")
async def on_check_run(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext
) -> None:
    """A finished check run may be a health or smoke signal (the bot's own runs are none)."""
    run = event.data["check_run"]
    if not _by_us(run, ctx):
        repo = str(event.data["repository"]["full_name"])
        await advance_for_signal(gh, ctx, repo, str(run["head_sha"]), str(run.get("name") or ""))


@router.register("check_suite", action="completed")
async def on_check_suite(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext
) -> None:
    """A finished check suite may carry health or smoke signals."""
    suite = event.data["check_suite"]
    if not _by_us(suite, ctx):
        repo = str(event.data["repository"]["full_name"])
        await advance_for_signal(gh, ctx, repo, str(suite["head_sha"]), None)
