"""``/hold [reason]``: label the PR so that nothing merges it until ``/unhold``.

On a merged PR the hold also goes on its in-flight promotion PRs, since holding a change that
is already merged means holding its way to the next environment.
"""

from __future__ import annotations

import gidgethub.abc

from bot.domain.commands import escape_text
from bot.domain.labels import HOLD_LABEL
from bot.service.context import HandlerContext
from bot.service.records import set_held
from handlers.commands.base import (
    CommandResult,
    Invocation,
    evaluate_if_promotion,
    in_flight_promotions,
    is_merged,
    repo_path,
)


async def add_hold(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, number: int) -> None:
    """Hold in the bot's state, then add the label that shows it (GitHub ignores one already there)."""
    await set_held(ctx, repo, number, True)
    await gh.post(f"{repo_path(repo)}/issues/{number}/labels", data={"labels": [HOLD_LABEL]})


async def run(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, inv: Invocation) -> CommandResult:
    """Hold the PR (and a merged PR's in-flight promotions) and say why, quoting the reason safely."""
    reason = f"\n\n> {escape_text(inv.command.args[0])}" if inv.command.args else ""
    if is_merged(inv.pr):
        promotions = await in_flight_promotions(gh, ctx, inv.repo, inv.number)
        await add_hold(gh, ctx, inv.repo, inv.number)
        if not promotions:
            return CommandResult(
                ok=True,
                message=f"Labelled `{HOLD_LABEL}`.{reason}\n\nThis PR is merged and has no promotion PR "
                "open right now, so there is nothing to stop yet. To stop a later promotion, comment "
                "`/hold` on its promotion PR.",
            )
        for pr in promotions:
            await add_hold(gh, ctx, inv.repo, int(pr["number"]))
        held = ", ".join(f"#{pr['number']}" for pr in promotions)
        return CommandResult(
            ok=True,
            message=f"On hold: this PR and its promotion {held} (label `{HOLD_LABEL}`).{reason}\n\n"
            "The bot will not merge the promotion until someone with write access comments `/unhold` "
            "here or on the promotion PR.",
        )
    await add_hold(gh, ctx, inv.repo, inv.number)
    gates = await evaluate_if_promotion(gh, ctx, inv)
    return CommandResult(
        ok=True,
        message=f"On hold (label `{HOLD_LABEL}`).{reason}\n\n"
        f"The bot will not merge this PR until someone with write access comments `/unhold`.{gates}",
    )
