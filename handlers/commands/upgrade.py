"""``/upgrade <cluster> [to <version>] [in-place|blue-green]``, and the campaign side of ``/hold``,
``/unhold`` and ``/rollback`` when given on an upgrade's tracking issue (see handlers.upgrades)."""

from __future__ import annotations

import gidgethub.abc

from bot.domain.upgrades.command import parse_upgrade
from bot.service.context import HandlerContext
from handlers.commands.base import CommandResult, Invocation
from handlers.upgrades import campaign_command, start_upgrade

CAMPAIGN_COMMANDS = frozenset({"upgrade", "hold", "unhold", "rollback"})
"""The commands an issue (not a pull request) accepts: those that act on an upgrade campaign."""


async def run(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, inv: Invocation) -> CommandResult:
    """Start or resume the campaign; a usage answer for bad arguments."""
    parsed = parse_upgrade(inv.command.args[0] if inv.command.args else "")
    if isinstance(parsed, str):
        return CommandResult(ok=False, message=parsed)
    outcome = await start_upgrade(gh, ctx, repo=inv.repo, request=parsed, user=inv.user)
    return CommandResult(ok=bool(outcome.ok), message=outcome.message, url=outcome.url)


async def on_issue(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, inv: Invocation) -> CommandResult | None:
    """``/hold``, ``/unhold``, ``/rollback`` on an issue: act on its campaign (None: not an issue)."""
    if not inv.is_issue or inv.command.name not in ("hold", "unhold", "rollback"):
        return None
    reason = inv.command.args[0] if inv.command.args else f"requested by @{inv.user}"
    outcome = await campaign_command(
        gh, ctx, repo=inv.repo, issue_number=inv.number, name=inv.command.name, reason=reason
    )
    return CommandResult(ok=bool(outcome.ok), message=outcome.message, url=outcome.url)
