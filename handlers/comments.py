"""Slash commands in pull-request comments (``issue_comment`` created and edited).

Flow: parse (pure) → 👀 on receipt → read the PR and the ``commands`` config from its base
branch → permission check → run the command's runner → reply (one reply per command comment,
updated in place when the same delivery runs twice) and a reaction with the outcome:
``+1`` done, ``-1`` refused or failed, ``confused`` for usage errors and runner crashes.

Budgets (:mod:`bot.domain.budgets`, state in the store): one refusal reply per PR per hour,
and a per-person command burst limit per repository.

An edited comment runs again only when its parsed command differs from the one before the edit.
Comments on issues (not pull requests) are ignored, except the commands that act on an upgrade
campaign (``/upgrade``, and ``/hold``, ``/unhold``, ``/rollback`` on its tracking issue); the
bot's own comments are ignored.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any
from urllib.parse import quote

import gidgethub
import gidgethub.abc
import gidgethub.routing
import gidgethub.sansio

from bot.domain import budgets
from bot.domain.commands import Command, Ignore, Outcome, Reply, code, parse_comment
from bot.domain.config import CONFIG_PATH, ConfigError, parse_config
from bot.domain.help import COMMANDS
from bot.domain.labels import REPLY_MARKER
from bot.domain.upgrades.tracking import LABEL as UPGRADE_LABEL
from bot.domain.upgrades.tracking import by_bot
from bot.github.comments import find_bot_comment
from bot.github.facts import GitHubFacts
from bot.service.context import HandlerContext
from handlers.commands import RUNNERS, CommandResult, Invocation
from handlers.commands.base import redact, repo_path
from handlers.commands.upgrade import CAMPAIGN_COMMANDS, on_issue

log = logging.getLogger(__name__)

router = gidgethub.routing.Router()

ALLOWED_ROLES = frozenset({"admin", "maintain", "write"})
MAX_REPLY_CHARS = 60_000
"""GitHub refuses comments over 65,536 characters; longer answers are cut with a note."""


@router.register("issue_comment", action="created")
@router.register("issue_comment", action="edited")
async def on_issue_comment(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext
) -> None:
    """Route a PR comment to :func:`handle_comment`."""
    await handle_comment(event.data, gh, ctx)


def outcome_of(data: dict[str, Any], ctx: HandlerContext, *, enabled: list[str] | None = None) -> Outcome:
    """Parse the comment of an ``issue_comment`` payload; edits that keep the command are ignored."""
    issue = data.get("issue") or {}
    comment = data.get("comment") or {}
    sender = data.get("sender") or comment.get("user") or {}

    def parse(body: str | None) -> Outcome:
        return parse_comment(
            body,
            sender_login=str(sender.get("login") or ""),
            sender_type=str(sender.get("type") or "User"),
            bot_login=ctx.bot_login,
            enabled=enabled,
        )

    outcome = parse(comment.get("body"))
    if "pull_request" not in issue and not _campaign_command(issue, outcome, ctx.bot_login):
        return Ignore("comment on an issue, not a pull request")
    if data.get("action") == "edited" and not isinstance(outcome, Ignore):
        before = (data.get("changes") or {}).get("body")
        if not isinstance(before, dict):
            return Ignore("edit did not change the body")
        if _same(parse(before.get("from")), outcome):
            return Ignore("edit kept the same command")
    return outcome


def _campaign_command(issue: dict[str, Any], outcome: Outcome, bot_login: str) -> bool:
    """On an issue: ``/upgrade``; ``/hold``, ``/unhold``, ``/rollback`` only on the bot's upgrade issues."""
    if not isinstance(outcome, Command) or outcome.name not in CAMPAIGN_COMMANDS:
        return False
    labels = {str(label.get("name")) for label in issue.get("labels") or [] if isinstance(label, dict)}
    return outcome.name == "upgrade" or (UPGRADE_LABEL in labels and by_bot(issue, bot_login))


def _same(before: Outcome, after: Outcome) -> bool:
    if isinstance(before, Command) and isinstance(after, Command):
        return (before.name, before.args) == (after.name, after.args)
    return before == after


async def handle_comment(data: dict[str, Any], gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext) -> None:
    """Run the command in one ``issue_comment`` payload, if any (see the module docs)."""
    if isinstance(outcome_of(data, ctx), Ignore):
        return
    repo = data["repository"]["full_name"]
    comment = data["comment"]
    comment_id = int(comment["id"])
    user = str(data["sender"]["login"])
    if not await within_burst(gh, ctx, repo, int(data["issue"]["number"]), comment, user):
        return
    await react(gh, repo, comment_id, "eyes")

    pr = await _pull_or_issue(gh, repo, data["issue"])
    config = await load_commands_config(gh, repo, pr)
    outcome = outcome_of(data, ctx, enabled=config.get("enabled"))
    if isinstance(outcome, Ignore):
        return
    if isinstance(outcome, Reply):
        await reply(gh, repo, pr["number"], comment, user, outcome.raw, outcome.text, bot_login=ctx.bot_login)
        await react(gh, repo, comment_id, "confused")
        return

    if COMMANDS[outcome.name].needs_write:
        allowed, role = await may_command(gh, repo, user, config.get("allowed_teams") or [], ctx.cache)
        if not allowed:
            if await refusal_reply_due_now(ctx, repo, int(pr["number"])):
                await reply(
                    gh,
                    repo,
                    pr["number"],
                    comment,
                    user,
                    outcome.raw,
                    denied_text(outcome, role),
                    bot_login=ctx.bot_login,
                )
            await react(gh, repo, comment_id, "-1")
            return

    inv = Invocation(repo=repo, pr=pr, command=outcome, user=user, comment_id=comment_id, config=config)
    reaction = "+1"
    try:
        result = await on_issue(gh, ctx, inv) or await RUNNERS[outcome.name](gh, ctx, inv)
        if not result.ok:
            reaction = "-1"
    except Exception as exc:
        log.exception(
            "command %s on %s#%s failed (delivery %s)", outcome.name, repo, pr["number"], ctx.delivery_id
        )
        result = CommandResult(ok=False, message=failure_text(exc, ctx.delivery_id))
        reaction = "confused"
    if result.message:
        await reply(
            gh, repo, pr["number"], comment, user, outcome.raw, result.message, bot_login=ctx.bot_login
        )
    await react(gh, repo, comment_id, reaction)


async def refusal_reply_due_now(ctx: HandlerContext, repo: str, number: int) -> bool:
    """True (and recorded in the store) when the PR had no refusal reply within the hour."""
    if ctx.store is None:
        return True
    now = time.time()

    def decide(stored: str | None) -> tuple[str | None, bool]:
        due = budgets.refusal_reply_due(stored, now, budgets.REFUSAL_WINDOW)
        return (f"{now:.3f}" if due else None), due

    if not await ctx.store.update_state(budgets.refusal_key(repo, number), decide):
        log.info("refusal on %s#%s answered by a reaction only (one reply per hour)", repo, number)
        return False
    return True


async def within_burst(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    repo: str,
    number: int,
    comment: dict[str, Any],
    user: str,
) -> bool:
    """Count the command against ``user``'s budget in ``repo``; past it, say so once and refuse."""
    if ctx.store is None:
        return True
    now = time.time()

    def decide(stored: str | None) -> tuple[str, budgets.Burst]:
        decision = budgets.burst(stored, now, limit=budgets.BURST_LIMIT, window=budgets.BURST_WINDOW)
        return decision.state, decision

    decision = await ctx.store.update_state(budgets.burst_key(repo, user), decide)
    if decision.allowed:
        return True
    log.info("command burst by %s on %s: not run", user, repo)
    if decision.reply:
        minutes = max(1, round(decision.retry_in / 60))
        text = (
            f"You have given more than {budgets.BURST_LIMIT} commands in this repository in "
            f"{budgets.BURST_WINDOW / 60:.0f} minutes, so I am not running more for now. "
            f"Try again in about {minutes} minute{'s' if minutes != 1 else ''}."
        )
        await reply(gh, repo, number, comment, user, "", text, bot_login=ctx.bot_login)
    await react(gh, repo, int(comment["id"]), "-1")
    return False


async def _pull_or_issue(gh: gidgethub.abc.GitHubAPI, repo: str, issue: dict[str, Any]) -> dict[str, Any]:
    """The pull request; for an issue (upgrade commands), the issue with the default branch as base."""
    number = int(issue["number"])
    if "pull_request" in issue:
        return dict(await gh.getitem(f"{repo_path(repo)}/pulls/{number}"))
    found = dict(await gh.getitem(f"{repo_path(repo)}/issues/{number}"))
    default = (await gh.getitem(repo_path(repo))).get("default_branch") or "main"
    return {**found, "base": {"ref": default}}


async def react(gh: gidgethub.abc.GitHubAPI, repo: str, comment_id: int, content: str) -> None:
    """Add a reaction to an issue comment (GitHub answers 200 for one that already exists)."""
    await gh.post(f"{repo_path(repo)}/issues/comments/{comment_id}/reactions", data={"content": content})


async def reply(
    gh: gidgethub.abc.GitHubAPI,
    repo: str,
    number: int,
    comment: dict[str, Any],
    user: str,
    raw: str,
    text: str,
    *,
    bot_login: str | None = None,
) -> None:
    """Post the answer to a command comment, or update the one the bot already posted for it.

    ``raw`` (the command as typed, may be "") is quoted after the mention of ``user``.
    """
    marker = REPLY_MARKER.format(comment_id=int(comment["id"]))
    # a code span shows HTML literally and GitHub does not link mentions in it; the zero-width
    # space after "@" makes sure nobody named in the command is pinged again
    quoted = " " + code(raw.replace("@", "@\u200b")) if raw else ""
    if len(text) > MAX_REPLY_CHARS:
        text = text[:MAX_REPLY_CHARS] + "\n\n… (cut here: the full answer is longer than a comment may be)"
    body = f"@{user}{quoted}\n\n{text}\n\n{marker}"
    since = comment.get("created_at")
    existing = await find_bot_comment(gh, repo, number, marker, bot_login=bot_login, since=since)
    if existing is None:
        await gh.post(f"{repo_path(repo)}/issues/{number}/comments", data={"body": body})
    elif existing.get("body") != body:
        await gh.patch(f"{repo_path(repo)}/issues/comments/{int(existing['id'])}", data={"body": body})


async def load_commands_config(gh: gidgethub.abc.GitHubAPI, repo: str, pr: dict[str, Any]) -> dict[str, Any]:
    """Return the ``commands`` section of the config on the PR's base branch (defaults when absent).

    The tip of the base branch is read, not the PR's base commit, so a command just turned off
    there is off for every open PR at once. A broken config file does not stop commands: its
    errors are logged and the defaults apply (every command on, no extra teams); the PR checks
    report the broken file.
    """
    base = pr.get("base") or {}
    ref = str(base.get("ref") or base.get("sha") or "")
    url = f"{repo_path(repo)}/contents/{quote(CONFIG_PATH)}?ref={quote(ref, safe='')}"
    try:
        item = await gh.getitem(url)
    except gidgethub.BadRequest as exc:
        if exc.status_code == 404:
            return {}
        raise
    try:
        text = base64.b64decode(item.get("content") or "").decode("utf-8")
        return dict(parse_config(text).get("commands") or {})
    except (ConfigError, ValueError) as exc:
        log.warning("ignoring the commands config of %s at %s: %s", repo, ref[:12], exc)
        return {}


async def may_command(
    gh: gidgethub.abc.GitHubAPI,
    repo: str,
    user: str,
    allowed_teams: list[str],
    cache: dict[str, Any] | None = None,
) -> tuple[bool, str]:
    """Return whether ``user`` may run commands here, and their repository role.

    Allowed: role (or permission) admin, maintain or write, or active membership of one of
    ``allowed_teams`` (``org/team-slug``). Not a collaborator means role ``none``.
    """
    return await GitHubFacts(gh, {} if cache is None else cache).may_command(repo, user, allowed_teams)


def denied_text(command: Command, role: str) -> str:
    """Say politely why a command was refused and what to do."""
    return (
        f"Thanks! Only people with write, maintain or admin permission on this repository can run "
        f"`/{command.name}` (your role here: *{role}*). Nothing was done. "
        "Please ask a maintainer to run it for you."
    )


def failure_text(exc: BaseException, delivery_id: str) -> str:
    """Describe a runner crash without leaking tokens, and say what to do."""
    detail = redact(str(exc))
    where = f" (delivery `{delivery_id}`)" if delivery_id else ""
    return (
        f"Something went wrong and the command did not finish: {code(f'{type(exc).__name__}: {detail}')}."
        "\n\n"
        "Commands are safe to repeat: try it again in a minute; if it keeps failing, "
        f"ask the bot's operators to look at the logs{where}."
    )
