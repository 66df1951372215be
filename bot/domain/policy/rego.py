"""The one module that talks to the Rego engine (regopy, the rego-cpp binding).

Everything else in :mod:`bot.domain.policy` goes through :class:`CompiledTemplate`, so the
engine can be swapped by rewriting this file alone.

Batching: Gatekeeper's natural batch form is a wrapper module that iterates over the objects
and evaluates ``violation`` ``with input as`` each one. regopy 1.5.2 (the newest release)
fails on every ``with input as`` (``shape rego-localref has no field rego-refhead``).
``with data.x as`` does work, so a rewrite of the template's ``input`` into ``data`` was
measured too: it gave the same results, but ran 1.2-2.9x slower than one query per
pair. So a template is compiled once into a bundle, and each (constraint, object) pair is one
bundle query with a fresh ``input`` (a :class:`regopy.Input`, with the per-query
well-formedness re-check turned off).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import regopy
from regopy import rego_shared

_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)


_SET_RULE_HEAD = re.compile(r"^\s*([A-Za-z_]\w*)\[[A-Za-z_]\w*\]\s*(?:if\s*)?\{", re.MULTILINE)
_SET_RULE_CONTAINS = re.compile(r"^\s*([A-Za-z_]\w*)\s+contains\s", re.MULTILINE)


def _rewrite_set_iteration(source: str) -> str:
    """Rewrite ``x := some_set[_]`` into the equivalent ``some_set[x]`` for this module's set rules.

    rego-cpp (regopy 1.5.2) binds ``x`` to ``true`` instead of the element when a partial
    set rule is iterated with ``[_]``; the membership form ``some_set[x]`` works. Only
    names defined in the module as partial set rules are rewritten, so array iteration
    (where ``arr[x]`` would bind an index) is untouched.
    """
    names = set(_SET_RULE_HEAD.findall(source)) | set(_SET_RULE_CONTAINS.findall(source))
    if not names:
        return source
    alternatives = "|".join(re.escape(n) for n in sorted(names))
    pattern = re.compile(rf"\b([A-Za-z_]\w*)\s*:=\s*({alternatives})\[_\]")
    return pattern.sub(lambda m: f"{m.group(2)}[{m.group(1)}]", source)


class RegoError(ValueError):
    """The Rego source did not compile or a query failed at run time."""


def package_of(source: str) -> str:
    """Return the ``package`` name declared in a Rego module, or raise :class:`RegoError`."""
    match = _PACKAGE.search(source)
    if match is None:
        raise RegoError("the Rego source has no `package` line")
    return match.group(1)


def _short(error: str) -> str:
    lines = [ln.strip() for ln in error.splitlines() if ln.strip()]
    return " ".join(lines[:6])[:400]


class CompiledTemplate:
    """One ConstraintTemplate's Rego (plus ``libs``) compiled with a fixed inventory.

    ``inventory`` becomes ``data.inventory`` (Gatekeeper's replicated cluster state:
    ``namespace[ns][apiVersion][kind][name]`` and ``cluster[apiVersion][kind][name]``).
    """

    def __init__(self, source: str, libs: Sequence[str] = (), inventory: Mapping[str, Any] | None = None):
        self.package = package_of(source)
        #: Whether the Rego reads ``data.inventory`` (only then is the inventory loaded: it is costly).
        self.referential = "data.inventory" in source or any("data.inventory" in lib for lib in libs)
        self._interp = regopy.Interpreter()
        try:
            self._interp.add_module("template", _rewrite_set_iteration(source))
            for index, lib in enumerate(libs):
                self._interp.add_module(f"lib{index}", _rewrite_set_iteration(lib))
            if self.referential:
                self._interp.add_data_json(json.dumps({"inventory": dict(inventory or {})}))
            self._bundle = self._interp.build(
                f"gitopsbot_violations := [v | data.{self.package}.violation[v]]"
            )
            # The AST was checked while compiling; re-checking it on every query costs about a third.
            self._interp.well_formed_checks_enabled = False
        except rego_shared.RegoError as exc:
            raise RegoError(f"Rego compile error: {_short(str(exc))}") from exc
        except RuntimeError as exc:  # pragma: no cover - engine-internal failure
            raise RegoError(f"Rego engine error: {_short(str(exc))}") from exc

    def violations(self, review: Mapping[str, Any], parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Return the ``violation`` set for one review as a list of ``{"msg", "details"}`` dicts."""
        self._interp.set_input(regopy.Input({"review": dict(review), "parameters": dict(parameters)}))
        output = self._interp.query_bundle(self._bundle)
        if not output.ok():
            raise RegoError(
                f"Rego evaluation error: {_short(rego_shared.rego_get_error(self._interp._impl))}"
            )
        data = json.loads(str(output))
        result = (data.get("bindings") or {}).get("gitopsbot_violations") or []
        return [v if isinstance(v, dict) else {"msg": str(v)} for v in result]
