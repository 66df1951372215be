"""The one deep merge of the render code: Helm's values coalescing, Argo CD's mergo override, templates."""

from __future__ import annotations

import copy
from typing import Any


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` merged with ``over``: maps present on both sides merge key by key,
    recursively; any other value of ``over`` (scalars, lists, null) replaces the one of ``base``.

    This is Helm's values merge and Argo CD's ``mergo.Merge(WithOverride)`` on parameters and
    templates. Neither input is modified and the result shares nothing with them.
    """
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
