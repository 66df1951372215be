"""``/hold [reason]``: label the PR so that nothing merges it until ``/unhold``."""

from __future__ import annotations

import gidgethub.abc

from bot.context import HandlerContext
from bot.domain.commands import escape_text
from bot.domain.labels import HOLD_LABEL
from handlers.commands.base import CommandResult, Invocation, evaluate_if_promotion, repo_path


async def run(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, inv: Invocation) -> CommandResult:
    """Add the hold label (idempotent) and say why, quoting the reason safely."""
    await gh.post(f"{repo_path(inv.repo)}/issues/{inv.number}/labels", data={"labels": [HOLD_LABEL]})
    reason = f"\n\n> {escape_text(inv.command.args[0])}" if inv.command.args else ""
    gates = await evaluate_if_promotion(gh, ctx, inv)
    return CommandResult(
        ok=True,
        message=f"On hold (label `{HOLD_LABEL}`).{reason}\n\n"
        f"The bot will not merge this PR until someone with write access comments `/unhold`.{gates}",
    )
