"""``/help``: post the table of commands."""

from __future__ import annotations

import gidgethub.abc

from bot.domain.help import HELP
from bot.service.context import HandlerContext
from handlers.commands.base import CommandResult, Invocation


async def run(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, inv: Invocation) -> CommandResult:
    """Return the help table."""
    return CommandResult(ok=True, message=HELP)
