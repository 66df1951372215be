"""The bot's own records, kept in its store: what it made, and which PRs it holds.

A promotion or rollback PR is recognised from these records, never from a PR's body, labels
or branch name, which people with access can write (:func:`bot.domain.promotion.decide.standing`).
The hold is the bot's state too: the ``gitops-bot/hold`` label shows it, and removing the label
without the commands' permission does not release it.

Without a store (some tests, ``replay --dry-run``) nothing is recorded and nothing is a
promotion: the bot then never merges anything by itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bot.domain.promotion.decide import PullFacts, Record, Standing, standing
from bot.queue.base import DeliveryStore
from bot.service.context import HandlerContext

_RECORD = "promotion:{repo}:{branch}"
_HOLD = "hold:{repo}#{number}"


async def read_record(ctx: HandlerContext, repo: str, branch: str) -> Record | None:
    """The bot's record of its branch ``branch``, or None."""
    if ctx.store is None:
        return None
    return Record.from_json(await ctx.store.get_state(_RECORD.format(repo=repo, branch=branch)))


async def write_record(ctx: HandlerContext, repo: str, record: Record) -> None:
    """Save ``record`` (a no-op without a store)."""
    if ctx.store is not None:
        await ctx.store.set_state(_RECORD.format(repo=repo, branch=record.branch), record.to_json())


def pull_facts(pr: Mapping[str, Any], record: Record | None) -> PullFacts:
    """What :func:`standing` reads of a PR object from GitHub."""
    return PullFacts(
        number=int(pr.get("number") or 0),
        author=str((pr.get("user") or {}).get("login") or ""),
        head_ref=str((pr.get("head") or {}).get("ref") or ""),
        head_sha=str((pr.get("head") or {}).get("sha") or ""),
        base_ref=str((pr.get("base") or {}).get("ref") or ""),
        record=record,
    )


async def pr_standing(
    ctx: HandlerContext, repo: str, pr: Mapping[str, Any]
) -> tuple[Standing, Record | None]:
    """Whether ``pr`` is the bot's promotion or rollback, from the bot's record; and the record."""
    head_ref = str((pr.get("head") or {}).get("ref") or "")
    record = await read_record(ctx, repo, head_ref) if head_ref else None
    return standing(pull_facts(pr, record), ctx.bot_login), record


async def is_promotion_pr(ctx: HandlerContext, repo: str, pr: Mapping[str, Any]) -> bool:
    """True for a promotion PR the bot opened and pushed, by the bot's own record (not its label,
    branch name, author or body, which people can write); also when someone else pushed to it since."""
    found, _ = await pr_standing(ctx, repo, pr)
    return found in (Standing.PROMOTION, Standing.LOST)


async def is_held(ctx: HandlerContext, repo: str, number: int) -> bool:
    """Whether the bot holds PR ``number`` (set by ``/hold`` or the hold label)."""
    if ctx.store is None:
        return False
    return await held_in(ctx.store, repo, number)


async def held_in(store: DeliveryStore, repo: str, number: int) -> bool:
    """Whether ``store`` records PR ``number`` of ``repo`` as held (what :func:`is_held` reads)."""
    return (await store.get_state(_HOLD.format(repo=repo, number=number))) == "held"


async def set_held(ctx: HandlerContext, repo: str, number: int, held: bool) -> None:
    """Record that PR ``number`` is held (or released)."""
    if ctx.store is not None:
        await ctx.store.set_state(_HOLD.format(repo=repo, number=number), "held" if held else "")


_DANGERS = "dangers:{repo}#{number}"


async def write_dangers(ctx: HandlerContext, repo: str, number: int, head_sha: str, rules: list[str]) -> None:
    """Record the danger rules the bot's rendered diff of ``head_sha`` found (a no-op without a store).

    Written only by :mod:`bot.prchecks.publish` after it rendered the diff itself: `when: dangerous`
    approval rules read it back (:func:`read_dangers`), never anything a person can write.
    """
    if ctx.store is not None:
        value = json.dumps({"head_sha": head_sha, "rules": sorted(set(rules))})
        await ctx.store.set_state(_DANGERS.format(repo=repo, number=number), value)


async def read_dangers(ctx: HandlerContext, repo: str, number: int, head_sha: str) -> tuple[str, ...] | None:
    """The danger rules of ``head_sha``'s rendered diff, or None when the bot has not rendered it yet."""
    if ctx.store is None:
        return None
    raw = await ctx.store.get_state(_DANGERS.format(repo=repo, number=number))
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("head_sha") != head_sha:
        return None  # an older head's diff says nothing about this one
    if not isinstance(data.get("rules"), list):
        return None
    return tuple(str(r) for r in data["rules"])
