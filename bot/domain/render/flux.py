"""Flux pieces that need no cluster: ``postBuild`` variable substitution and its sources.

Substitution follows kustomize-controller: ``${var}``, ``${var:=default}`` and
``${var:-default}`` are replaced, ``$${var}`` is an escape for a literal ``${var}``,
unknown variables without a default become empty strings, and an object annotated
``kustomize.toolkit.fluxcd.io/substitute: disabled`` is left alone. A variable that comes
from a Secret is never replaced by its value: it becomes a keyed-hash token
(:func:`secret_token`), so a change is visible and the value is not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from bot.domain.diff import secret_token

__all__ = ["secret_token", "substitute_object", "substitute_text"]

SUBSTITUTE_DISABLED = "kustomize.toolkit.fluxcd.io/substitute"

_VAR = re.compile(r"(\$?)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:=|:-)([^}]*))?\}")


def substitute_text(text: str, variables: Mapping[str, str]) -> str:
    """Replace Flux ``${var}`` references in ``text`` (see module docstring)."""

    def sub(m: re.Match[str]) -> str:
        escape, name, op, default = m.groups()
        if escape:
            return m.group(0)[1:]
        if name in variables:
            return variables[name]
        if op:
            return default or ""
        return ""

    return _VAR.sub(sub, text)


def substitute_object(obj: dict[str, Any], variables: Mapping[str, str]) -> dict[str, Any]:
    """Return ``obj`` with its YAML text substituted and parsed again, as Flux does."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if str(annotations.get(SUBSTITUTE_DISABLED, "")).lower() == "disabled":
        return obj
    text = yaml.dump(obj, Dumper=yaml.CSafeDumper, sort_keys=False, width=10_000)
    if "${" not in text:
        return obj
    new = yaml.load(substitute_text(text, variables), Loader=yaml.CSafeLoader)
    return new if isinstance(new, dict) else obj
