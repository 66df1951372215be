"""The kustomize options a Flux Kustomization or Argo CD source sets on a target (pure parts).

Which targets need a build with their options, the options as a stable JSON text (part of the
target), the files they read and the common metadata they add. The build itself writes a
scratch copy of the path and runs kustomize: :mod:`bot.render_runtime.overlay_build`.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

from bot.domain.render.kustomize_options import (
    ARGOCD_FIELDS,
    FLUX_FIELDS,
    OptionError,
    apply_common_metadata,
    option_paths,
    resolve,
)
from bot.domain.render.result import Target

__all__ = [
    "OptionError",
    "common_metadata",
    "needs_build",
    "needs_build_spec",
    "option_inputs",
    "options_json",
]


def options_json(kind: str, spec: dict[str, Any], common: Any = None) -> str:
    """The ``Target.options`` of a Flux spec (``kind="flux"``) or an Argo CD ``source.kustomize``."""
    fields = FLUX_FIELDS if kind == "flux" else ARGOCD_FIELDS
    keep = {k: spec[k] for k in fields if spec.get(k) not in (None, "", [], {})}
    if kind == "flux" and keep and spec.get("targetNamespace"):
        keep["targetNamespace"] = spec["targetNamespace"]
    if keep.get("components") and spec.get("ignoreMissingComponents"):
        keep["ignoreMissingComponents"] = True
    if kind == "argocd":
        keep.update({k: spec[k] for k in spec if k.startswith(("force", "label")) and spec[k]})
    if isinstance(common, dict) and (common.get("labels") or common.get("annotations")):
        keep["commonMetadata"] = common
    return json.dumps({"kind": kind, "spec": keep}, sort_keys=True) if keep else ""


def target_options(target: Target) -> tuple[str, dict[str, Any]]:
    kind, spec = _parsed(target.options)
    return kind, copy.deepcopy(spec)


@lru_cache(maxsize=1024)
def _parsed(options: str) -> tuple[str, dict[str, Any]]:
    data = json.loads(options)
    return str(data["kind"]), dict(data["spec"])


def needs_build(target: Target) -> bool:
    """Tell whether the target's options change what kustomize builds (commonMetadata does not)."""
    return needs_build_spec(target.options)


def needs_build_spec(options: str) -> bool:
    """:func:`needs_build` for an ``options`` string."""
    return bool(options) and any(k != "commonMetadata" for k in _parsed(options)[1])


def option_inputs(target: Target) -> list[str]:
    """Repository paths the options read (components, patch files); raises :class:`OptionError`."""
    if not target.options:
        return []
    kind, spec = target_options(target)
    return [resolve(target.path, p) for p in option_paths(kind, spec)]


def common_metadata(target: Target, obj: dict[str, Any]) -> dict[str, Any]:
    """Apply Flux ``commonMetadata`` to one rendered object (after variables, as Flux does)."""
    if not target.options:
        return obj
    _kind, spec = target_options(target)
    common = spec.get("commonMetadata")
    return apply_common_metadata(obj, common) if isinstance(common, dict) else obj
