"""Rendering: discover targets, build them offline with kustomize, diff base against head.

Public entry points: :func:`discover_targets`, :func:`compute_diff`, :func:`render_tree`,
:class:`RenderCache`, :func:`forget_memos`, and the result types :class:`DiffResult` and :class:`Target`.
"""

from __future__ import annotations

from bot.domain.render.cache import RenderCache
from bot.domain.render.discovery import discover, discover_targets
from bot.domain.render.engine import compute_diff, forget_memos, render_target, render_tree
from bot.domain.render.result import BlastRow, DiffResult, Target, TargetStatus

__all__ = [
    "BlastRow",
    "DiffResult",
    "RenderCache",
    "Target",
    "TargetStatus",
    "compute_diff",
    "discover",
    "discover_targets",
    "forget_memos",
    "render_target",
    "render_tree",
]
