"""``/promote [env]``: open or retry the promotion of a merged PR (see handlers.promotion)."""

from __future__ import annotations

import gidgethub.abc

from bot.service.context import HandlerContext
from handlers.commands.base import CommandResult, Invocation
from handlers.promotion import promote_pr


async def run(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, inv: Invocation) -> CommandResult:
    """Call ``promote_pr`` with this PR as the source; no env means the next environment."""
    target_env = inv.command.args[0] if inv.command.args else None
    outcome = await promote_pr(gh, ctx, repo=inv.repo, source_pr=inv.number, target_env=target_env)
    message = outcome.message
    if outcome.url and outcome.url not in message:
        message += f"\n\nPromotion PR: {outcome.url}"
    return CommandResult(ok=bool(outcome.ok), message=message, url=outcome.url)
