"""``/validate``: run every check on the PR again."""

from __future__ import annotations

import gidgethub.abc

from bot.service.context import HandlerContext
from handlers.commands.base import CommandResult, Invocation, rerun_checks, short_sha


async def run(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, inv: Invocation) -> CommandResult:
    """Re-run the checks and point at the Checks tab."""
    refused = await rerun_checks(gh, ctx, inv)
    if refused is not None:
        return refused
    checks = f"{inv.pr['html_url']}/checks" if inv.pr.get("html_url") else None
    where = f"the [Checks tab]({checks})" if checks else "the Checks tab"
    return CommandResult(ok=True, message=f"Ran every check again on {short_sha(inv.pr)}; see {where}.")
