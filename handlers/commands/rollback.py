"""``/rollback [reason]``: open a PR that reverts a merged PR (see handlers.promotion)."""

from __future__ import annotations

import gidgethub.abc

from bot.service.context import HandlerContext
from handlers.commands.base import CommandResult, Invocation
from handlers.promotion import rollback_pr


async def run(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, inv: Invocation) -> CommandResult:
    """Call ``rollback_pr``; the reason is the text after the command or who asked for it.

    The reason is passed as plain text: ``rollback_pr`` must escape it where it writes it.
    """
    if not inv.pr.get("merged") and not inv.pr.get("merged_at"):
        return CommandResult(
            ok=False,
            message="This PR is not merged, so there is nothing to roll back. "
            "Close it instead, or comment `/rollback` on the merged PR whose change you want reverted.",
        )
    reason = inv.command.args[0] if inv.command.args else f"requested by @{inv.user} with /rollback"
    outcome = await rollback_pr(gh, ctx, repo=inv.repo, pr_number=inv.number, reason=reason)
    message = outcome.message
    if outcome.url and outcome.url not in message:
        message += f"\n\nRevert PR: {outcome.url}"
    return CommandResult(ok=bool(outcome.ok), message=message, url=outcome.url)
