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


#: Line ends after which the next line continues the same expression (OPA and regorus agree).
_CONTINUES = ("{", "(", "[", ",", "|", "&", "+", "-", "*", "/", "%", "=", "<", ">", "!", ":", ";")
_VERB = re.compile(r"%[-+# 0]*(?:\*|\d+)?(?:\.(?:\*|\d+)?)?([a-zA-Z%])")


def _code_end(line: str) -> int:
    """Return where the code of a Rego line ends (before a ``#`` comment outside strings)."""
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in ('"', "`"):
            quote = ch
        elif ch == "#":
            return i
        i += 1
    return len(line)


def _split_paren_lines(source: str) -> str:
    """End an expression before a line that starts with ``(``, as OPA does.

    OPA ends an expression at a newline; regorus reads ``x := input.a`` followed by a line
    ``(x > 1)`` as the call ``input.a(x > 1)``. A ``;`` (Rego's expression separator) is put
    at the end of the previous line's code, so line numbers stay the same.
    """
    lines = source.split("\n")
    prev = -1
    for i, line in enumerate(lines):
        code = line[: _code_end(line)].rstrip()
        if not code.strip():
            continue
        if code.lstrip().startswith("(") and prev >= 0:
            before = lines[prev]
            end = len(before[: _code_end(before)].rstrip())
            ends_expression = not before[:end].endswith(_CONTINUES)
            if end and ends_expression and not before[:end].lstrip().startswith("package"):
                lines[prev] = before[:end] + ";" + before[end:]
        prev = i
    return "\n".join(lines)


def _array_items(text: str, start: int) -> tuple[int, int] | None:
    """Count the items of the array literal at ``text[start] == "["``; return (count, end) or ``None``."""
    depth = 0
    items = 0
    seen = False
    quote = ""
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in ('"', "`"):
            quote = ch
            seen = True
        elif ch in "([{":
            depth += 1
            if depth > 1:
                seen = True
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return (items + 1 if seen else 0), i + 1
        elif ch == "," and depth == 1:
            items += 1
        elif not ch.isspace():
            seen = True
        i += 1
    return None


_SPRINTF = re.compile(r'\bsprintf\(\s*"((?:[^"\\\n]|\\.)*)"\s*,\s*(?=\[)')


def _pad_sprintf(source: str) -> str:
    """Give ``sprintf`` OPA's answer when the format has more verbs than the array has items.

    OPA (Go's fmt) prints ``%!v(MISSING)`` for a verb without an argument; regorus fails the
    whole query. Where the format is a string literal and the arguments an array literal, the
    verbs without an argument are rewritten to that literal text.
    """
    out: list[str] = []
    pos = 0
    for m in _SPRINTF.finditer(source):
        found = _array_items(source, m.end())
        if found is None:
            continue
        count, _ = found
        fmt = m.group(1)
        verbs = [v for v in _VERB.finditer(fmt) if v.group(1) != "%"]
        if len(verbs) <= count:
            continue
        pieces: list[str] = []
        last = 0
        for v in verbs[count:]:
            pieces.append(fmt[last : v.start()])
            pieces.append(f"%%!{v.group(1)}(MISSING)")
            last = v.end()
        pieces.append(fmt[last:])
        out.append(source[pos : m.start(1)])
        out.append("".join(pieces))
        pos = m.end(1)
    out.append(source[pos:])
    return "".join(out)


def _split_chained_bodies(source: str) -> str:
    """Give each chained rule body (``p[x] { a } { b }``) its own copy of the rule head.

    In OPA a rule written with several bodies is one rule per body (a logical OR); regorus
    reads ``} {`` as ``else``, which it refuses for set rules. The head is copied onto the
    line of the chained ``{``, so line numbers stay the same.
    """
    out: list[str] = []
    copied = 0  # source[:copied] is in out
    depth = 0
    start = 0  # where the current top-level statement began
    head = ""
    closed_at = -1  # index just after a top-level body's closing brace, while only blanks follow
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        if ch == "#":
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        if ch in ('"', "`"):
            j = i + 1
            while j < n and source[j] != ch:
                j += 2 if ch == '"' and source[j] == "\\" else 1
            i = j + 1
            continue
        if ch in "([{":
            if ch == "{" and depth == 0:
                if closed_at >= 0 and head:
                    out.append(source[copied:i] + head + " ")
                    copied = i
                else:
                    head = " ".join(re.sub(r"#[^\n]*", "", source[start:i]).split())
            depth += 1
            closed_at = -1
        elif ch in ")]}":
            depth -= 1
            if depth == 0 and ch == "}":
                closed_at = i + 1
                start = i + 1
        elif ch == "\n" and depth == 0:
            if closed_at < 0:
                start = i + 1
        elif not ch.isspace():
            closed_at = -1
        i += 1
    return "".join(out) + source[copied:]


def opa_compatible(source: str) -> str:
    """Rewrite Rego source where regorus would read it differently from OPA (line numbers kept)."""
    return _pad_sprintf(_split_chained_bodies(_split_paren_lines(source)))


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
            self._engine.add_policy("template.rego", opa_compatible(source))
            for index, lib in enumerate(libs):
                self._engine.add_policy(f"lib{index}.rego", opa_compatible(lib))
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
