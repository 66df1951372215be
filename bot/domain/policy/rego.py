"""The one module that talks to the Rego engine (regorus, a Rego interpreter in Rust).

Everything else in :mod:`bot.domain.policy` goes through :class:`CompiledTemplate`, so the
engine can be swapped by rewriting this file alone. The PyPI distribution is
``gordon-to-regorus`` (a third-party fork of microsoft/regorus; Microsoft publishes no wheel on
PyPI); it imports as ``regorus``. Templates are Rego v0 (Gatekeeper's dialect), so the
engine runs in v0 mode.

Batching: each template gets a wrapper module that iterates over a batch of reviews and
evaluates the template's ``violation`` ``with input as`` each one, so a whole batch is one
engine call. If the batch call fails (a runtime error in one object), the batch is
re-evaluated one review at a time so that only the failing review reports the error.

Earlier engine, for the record: regopy 1.5.2 (rego-cpp) cost 0.35-2.4 ms per (object,
constraint) pair, failed on every ``with input as``, and a hand-batched rewrite grew
quadratically with the batch size there; 1,000 distinct objects x 50 constraints took 11 s
of CPU with it, against about 1.9 s with regorus (bench/policy_bench.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import regorus

_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_WRAPPER_PACKAGE = "gitopsbot_batch"
#: The batch wrapper (RULE is the template's ``data.<package>.violation``): ``single`` for one
#: ``input``; ``results`` for ``input.pairs`` of indexes into ``input.reviews`` and ``input.parameters``.
_WRAPPER = f"""package {_WRAPPER_PACKAGE}

single := [v | RULE[v]]

results := [violations |
    pair := input.pairs[_]
    item := {{"review": input.reviews[pair[0]], "parameters": input.parameters[pair[1]]}}
    violations := [v | RULE[v] with input as item]
]
"""


class RegoError(ValueError):
    """The Rego source did not compile or a query failed at run time."""


def package_of(source: str) -> str:
    """Return the ``package`` name declared in a Rego module, or raise :class:`RegoError`."""
    match = _PACKAGE.search(source)
    if match is None:
        raise RegoError("the Rego source has no `package` line")
    return match.group(1)


def _short(error: str) -> str:
    error = error.split("Stack backtrace:", 1)[0]
    lines = [ln.strip() for ln in error.splitlines() if ln.strip()]
    return " ".join(lines[:6])[:400]


def _as_violations(result: Any) -> list[dict[str, Any]]:
    return [v if isinstance(v, dict) else {"msg": str(v)} for v in result or []]


class CompiledTemplate:
    """One ConstraintTemplate's Rego (plus ``libs``) loaded into an engine with a fixed inventory.

    ``inventory`` becomes ``data.inventory`` (Gatekeeper's replicated cluster state:
    ``namespace[ns][apiVersion][kind][name]`` and ``cluster[apiVersion][kind][name]``).
    A template whose package is the wrapper's own (``gitopsbot_batch``) is rejected.
    """

    def __init__(self, source: str, libs: Sequence[str] = (), inventory: Mapping[str, Any] | None = None):
        self.package = package_of(source)
        if self.package.split(".")[0] == _WRAPPER_PACKAGE:
            raise RegoError(f"the package name {_WRAPPER_PACKAGE!r} is reserved by gitops-bot")
        #: Whether the Rego reads ``data.inventory`` (only then is the inventory loaded).
        self.referential = "data.inventory" in source or any("data.inventory" in lib for lib in libs)
        self._rule = f"data.{self.package}.violation"
        self._engine = regorus.Engine()
        self._engine.set_rego_v0(True)
        try:
            self._engine.add_policy("template.rego", source)
            for index, lib in enumerate(libs):
                self._engine.add_policy(f"lib{index}.rego", lib)
            self._engine.add_policy("gitopsbot_batch.rego", _WRAPPER.replace("RULE", self._rule))
            if self.referential:
                self._engine.add_data_json(json.dumps({"inventory": dict(inventory or {})}))
        except (RuntimeError, ValueError) as exc:
            raise RegoError(f"Rego compile error: {_short(str(exc))}") from exc

    def _eval(self, rule: str, input_json: str) -> Any:
        self._engine.set_input_json(input_json)
        try:
            return json.loads(self._engine.eval_rule_as_json(rule))
        except (RuntimeError, ValueError) as exc:
            raise RegoError(f"Rego evaluation error: {_short(str(exc))}") from exc

    def violations(self, review: Mapping[str, Any], parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Return the ``violation`` set for one review as a list of ``{"msg", "details"}`` dicts."""
        payload = json.dumps({"review": dict(review), "parameters": dict(parameters)})
        return _as_violations(self._eval(f"data.{_WRAPPER_PACKAGE}.single", payload))

    def violations_batch(
        self, reviews: Sequence[str], parameters: Sequence[str], pairs: Sequence[tuple[int, int]]
    ) -> list[list[dict[str, Any]] | RegoError]:
        """Return, per ``(review index, parameters index)`` pair, its violations or the error it raised.

        ``reviews`` and ``parameters`` are JSON texts, each sent to the engine once however
        many pairs use it. The whole batch is one engine call; only when that fails is each
        pair evaluated alone, so one broken object does not hide the results of the others.
        """
        if not pairs:
            return []
        payload = (
            f'{{"reviews":[{",".join(reviews)}],"parameters":[{",".join(parameters)}],'
            f'"pairs":{json.dumps([list(p) for p in pairs])}}}'
        )
        try:
            results = self._eval(f"data.{_WRAPPER_PACKAGE}.results", payload)
        except RegoError:
            results = None
        if isinstance(results, list) and len(results) == len(pairs):
            return [_as_violations(r) for r in results]
        out: list[list[dict[str, Any]] | RegoError] = []
        for r, p in pairs:
            try:
                single = f'{{"review":{reviews[r]},"parameters":{parameters[p]}}}'
                out.append(_as_violations(self._eval(f"data.{_WRAPPER_PACKAGE}.single", single)))
            except RegoError as exc:
                out.append(exc)
        return out
