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

from bot.domain import yamldump
from bot.domain.diff import secret_token
from bot.domain.render import fastyaml

__all__ = ["object_text", "secret_token", "substitute_object", "substitute_text"]

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


def object_text(obj: dict[str, Any]) -> str:
    """Return ``obj`` as the YAML text Flux substitutes in (keys in their order)."""
    return yamldump.dump(obj, sort_keys=False)


def substitute_object(
    obj: dict[str, Any], variables: Mapping[str, str], *, text: str | None = None
) -> dict[str, Any]:
    """Return ``obj`` with its YAML text substituted and parsed again, as Flux does.

    ``text`` is ``object_text(obj)`` when the caller already has it (objects shared by many
    targets are dumped once).
    """
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if str(annotations.get(SUBSTITUTE_DISABLED, "")).lower() == "disabled":
        return obj
    if text is None:
        text = object_text(obj)
    if "${" not in text:
        return obj
    new = fastyaml.load(substitute_text(text, variables))
    return new if isinstance(new, dict) else obj
