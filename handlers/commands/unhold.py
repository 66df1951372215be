"""``/unhold``: remove the hold label (from a merged PR's in-flight promotions too)."""

from __future__ import annotations

import gidgethub.abc

from bot.domain.labels import HOLD_LABEL
from bot.service.context import HandlerContext
from bot.service.records import is_held, set_held
from handlers.commands.base import (
    CommandResult,
    Invocation,
    evaluate_if_promotion,
    in_flight_promotions,
    is_merged,
    remove_label,
)
from handlers.promotion import evaluate_promotion


async def release(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, number: int) -> bool:
    """Release the bot's hold on ``number`` and remove its label; return whether it was held."""
    held = await is_held(ctx, repo, number)
    await set_held(ctx, repo, number, False)
    return await remove_label(gh, repo, number, HOLD_LABEL) or held


async def run(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, inv: Invocation) -> CommandResult:
    """Remove the hold label; not being on hold is fine and said so."""
    removed = await release(gh, ctx, inv.repo, inv.number)
    released: list[int] = []
    if is_merged(inv.pr):
        for pr in await in_flight_promotions(gh, ctx, inv.repo, inv.number):
            if await release(gh, ctx, inv.repo, int(pr["number"])):
                released.append(int(pr["number"]))
                await evaluate_promotion(gh, ctx, repo=inv.repo, promotion_pr=int(pr["number"]))
    gates = await evaluate_if_promotion(gh, ctx, inv)
    also = f" Also released its promotion {', '.join(f'#{n}' for n in released)}." if released else ""
    if not removed and not released:
        return CommandResult(ok=True, message=f"This PR was not on hold; nothing to release.{gates}")
    return CommandResult(ok=True, message=f"Hold released (label `{HOLD_LABEL}` removed).{also}{gates}")
