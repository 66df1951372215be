"""``/diff``: render the PR again and refresh the sticky diff comment."""

from __future__ import annotations

import gidgethub.abc

from bot.domain.labels import STICKY_MARKER
from bot.github.comments import find_bot_comment
from bot.service.context import HandlerContext
from handlers.commands.base import CommandResult, Invocation, rerun_checks, short_sha


async def run(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, inv: Invocation) -> CommandResult:
    """Re-run the checks (which re-render the diff) and link the diff comment."""
    refused = await rerun_checks(gh, ctx, inv)
    if refused is not None:
        return refused
    sticky = await find_bot_comment(gh, inv.repo, inv.number, STICKY_MARKER, bot_login=ctx.bot_login)
    where = (
        f"[the diff comment]({sticky['html_url']})"
        if sticky and sticky.get("html_url")
        else "the diff comment"
    )
    return CommandResult(ok=True, message=f"Rendered {short_sha(inv.pr)} again; {where} is up to date.")
