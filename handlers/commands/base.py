"""What every command runner gets and returns, and the GitHub helpers runners share."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import gidgethub
import gidgethub.abc

from bot.domain.commands import Command
from bot.domain.promotion.decide import Standing
from bot.service.context import HandlerContext
from bot.service.records import is_promotion_pr, pr_standing
from handlers.promotion import evaluate_promotion
from handlers.pull_request import run_pr_checks

log = logging.getLogger(__name__)

_TOKEN_RE = re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{10,}|github_pat_[A-Za-z0-9_]{10,})")


def redact(text: str, limit: int = 300) -> str:
    """Flatten an error message, cut it to ``limit`` characters and blank out GitHub tokens."""
    return _TOKEN_RE.sub("[redacted]", " ".join(text.split()))[:limit]


@dataclass
class Invocation:
    """One command to run: where, on which pull request, by whom, with which config."""

    repo: str
    pr: dict[str, Any]
    command: Command
    user: str
    comment_id: int
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def number(self) -> int:
        """The pull request number."""
        return int(self.pr["number"])

    @property
    def is_issue(self) -> bool:
        """True on an issue (an upgrade's tracking issue), not a pull request."""
        return "head" not in self.pr


@dataclass
class CommandResult:
    """What a runner did: ``message`` (safe markdown) is posted as a reply; None means reaction only."""

    ok: bool
    message: str | None = None
    url: str | None = None


Runner = Callable[[gidgethub.abc.GitHubAPI, HandlerContext, Invocation], Awaitable[CommandResult]]


def repo_path(repo: str) -> str:
    """Return ``/repos/{owner}/{name}`` for ``owner/name``."""
    owner, _, name = repo.partition("/")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


async def evaluate_if_promotion(gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, inv: Invocation) -> str:
    """Re-evaluate the gates when ``inv`` is a promotion PR; return a sentence about it (or "")."""
    if not await is_promotion_pr(ctx, inv.repo, inv.pr):
        return ""
    outcome = await evaluate_promotion(gh, ctx, repo=inv.repo, promotion_pr=inv.number)
    return f"\n\nPromotion gates: {outcome.message}"


async def remove_label(gh: gidgethub.abc.GitHubAPI, repo: str, number: int, label: str) -> bool:
    """Remove ``label`` from an issue or PR; return False when it was not there."""
    try:
        await gh.delete(f"{repo_path(repo)}/issues/{number}/labels/{quote(label, safe='')}")
    except gidgethub.BadRequest as exc:
        if exc.status_code == 404:
            return False
        raise
    return True


async def rerun_checks(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, inv: Invocation
) -> CommandResult | None:
    """Run the pull-request checks again; a CommandResult when that could not happen, else None."""
    if inv.pr.get("state") != "open":
        return CommandResult(
            ok=False,
            message="This PR is closed, so there is nothing to check again. "
            "Comment on an open PR, or use `/promote` or `/rollback` on a merged one.",
        )
    await run_pr_checks(gh, ctx, repo=inv.repo, pr=inv.pr)
    return None


def short_sha(pr: dict[str, Any]) -> str:
    """Return the PR head commit as inline code (7 characters)."""
    return f"`{str((pr.get('head') or {}).get('sha') or '')[:7]}`"


async def in_flight_promotions(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, number: int
) -> list[dict[str, Any]]:
    """Return the open promotion PRs carrying merged PR ``number``, by the bot's records of them."""
    found = []
    async for pr in gh.getiter(f"{repo_path(repo)}/pulls?state=open&per_page=100"):
        standing, record = await pr_standing(ctx, repo, pr)
        history = record.history if record is not None else None
        mine = standing in (Standing.PROMOTION, Standing.LOST) and history is not None
        if mine and history is not None and number in (history.origin_pr, history.source_pr):
            found.append(dict(pr))
    return found


def is_merged(pr: Mapping[str, Any]) -> bool:
    """True when the pull request has been merged."""
    return bool(pr.get("merged") or pr.get("merged_at"))
