"""Rendering, the pure parts: discover targets, expand generators, the result types.

Public entry points: :func:`discover`, :func:`discover_targets`, and the result types
:class:`DiffResult` and :class:`Target`. Building targets (kustomize, Helm, Go templates) and
diffing base against head run processes: :mod:`bot.render_runtime.engine` (``compute_diff``,
``render_tree``, ``render_target``, ``forget_memos``) with :class:`bot.render_runtime.cache.RenderCache`.
"""

from __future__ import annotations

from bot.domain.render.discovery import discover, discover_targets
from bot.domain.render.result import BlastRow, DiffResult, Target, TargetStatus

__all__ = [
    "BlastRow",
    "DiffResult",
    "Target",
    "TargetStatus",
    "discover",
    "discover_targets",
]
