"""``/unhold``: remove the hold label."""

from __future__ import annotations

import gidgethub.abc

from bot.context import HandlerContext
from bot.domain.labels import HOLD_LABEL
from handlers.commands.base import CommandResult, Invocation, evaluate_if_promotion, remove_label


async def run(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, inv: Invocation) -> CommandResult:
    """Remove the hold label; not being on hold is fine and said so."""
    removed = await remove_label(gh, inv.repo, inv.number, HOLD_LABEL)
    gates = await evaluate_if_promotion(gh, ctx, inv)
    if not removed:
        return CommandResult(ok=True, message=f"This PR was not on hold; nothing to release.{gates}")
    return CommandResult(ok=True, message=f"Hold released (label `{HOLD_LABEL}` removed).{gates}")
