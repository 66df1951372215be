"""What a handler gets besides the event and the GitHub client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bot.github.writes import GitHubWrites
from bot.queue.base import DeliveryStore
from bot.service.metrics import Metrics
from bot.service.settings import Settings


class RepoAccess(Protocol):
    """Git access to the repository an event is about (a local bare mirror)."""

    async def git_dir(self, full_name: str, *, refs: Sequence[str] = ()) -> Path:
        """Return the path of a bare mirror of ``full_name``, fetched now, ``refs`` included."""
        ...

    async def push(self, full_name: str, refspecs: Sequence[str], *, force: bool = False) -> None:
        """Push ``refspecs`` (``<sha>:refs/heads/<branch>``) from the mirror to GitHub."""
        ...


DiffRenderer = Callable[[Path, str, str, str], Awaitable[str]]
"""``(git_dir, base_rev, head_rev, env) -> markdown`` of the rendered change for ``env``."""


@dataclass
class HandlerContext:
    """Per-delivery context passed to every handler as ``router.dispatch(event, gh, ctx)``."""

    repos: RepoAccess
    store: DeliveryStore | None = None
    metrics: Metrics | None = None
    settings: Settings | None = None
    delivery_id: str = ""
    bot_login: str = "gitops-bot[bot]"
    cache: dict[str, Any] = field(default_factory=dict)
    diff_renderer: DiffRenderer | None = None
    """Renders a promotion's change for its PR body; None: the body points at the PR checks."""
    writes: GitHubWrites = field(default_factory=GitHubWrites)
    """The process's write locks and App id (:mod:`bot.github.writes`); shared by its deliveries."""
