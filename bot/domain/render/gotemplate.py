"""A small Go text/template interpreter for ApplicationSet ``goTemplate: true`` fields.

Supports what ApplicationSet templates use in practice: field chains (``.path.basename``),
pipelines (``.name | lower``), parenthesised calls, ``if``/``else if``/``else``/``end``,
trim markers (``{{-``/``-}}``), comments, and the common sprig functions (``index``,
``default``, ``lower``, ``upper``, ``replace``, ``printf``, ``trimPrefix``, ``trimSuffix``,
``trunc``, ``quote``, ``toJson``, ``normalize``, ``slugify``, ...). ``range``, ``with``,
``define`` and variables are refused with a :class:`TemplateError` rather than guessed.
A missing key prints ``<no value>`` as Go does, or fails with ``missingkey=error``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml


class TemplateError(ValueError):
    """The template cannot be parsed or evaluated."""


NO_VALUE = "<no value>"


class _Missing:
    pass


MISSING = _Missing()

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>[|()])
    )""",
    re.X,
)


def _tokenize(src: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    src = src.rstrip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot parse template action near {src[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
        # a field chain may follow a closing parenthesis: (index .x "a").b is not supported
    return tokens


def _normalize(value: str) -> str:
    out = re.sub(r"[^a-z0-9.-]", "-", value.lower())
    out = re.sub(r"^[^a-z0-9]+|[^a-z0-9]+$", "", out)
    return out[:253]


def _slugify(value: str, max_len: int = 50, smart_truncate: bool = True) -> str:
    out = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
    out = re.sub(r"-{2,}", "-", out)
    if len(out) > max_len:
        out = out[:max_len]
        if smart_truncate and "-" in out:
            out = out.rsplit("-", 1)[0]
    return out


def _to_str(value: Any) -> str:
    if value is None or isinstance(value, _Missing):
        return NO_VALUE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_to_str(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_to_str(v) for v in value) + "]"
    return str(value)


def _truthy(value: Any) -> bool:
    return not (
        value is None or isinstance(value, _Missing) or value in (False, 0, "") or value == [] or value == {}
    )


def _index(container: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(container, dict):
            container = container.get(key, MISSING)
        elif isinstance(container, list) and isinstance(key, int):
            if not 0 <= key < len(container):
                raise TemplateError(f"index out of range: {key}")
            container = container[key]
        elif container is None or isinstance(container, _Missing):
            return MISSING
        else:
            raise TemplateError(f"cannot index {type(container).__name__} with {key!r}")
    return container


def _printf(fmt: str, *args: Any) -> str:
    conv = [a if isinstance(a, int | float) and not isinstance(a, bool) else _to_str(a) for a in args]
    py = re.sub(r"%v", "%s", fmt)
    try:
        return py % tuple(conv)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"printf {fmt!r}: {exc}") from exc


def _default(default: Any, value: Any = MISSING) -> Any:
    return value if _truthy(value) else default


def _trunc(n: int, s: str) -> str:
    return s[:n] if n >= 0 else s[n:]


FUNCS: dict[str, Callable[..., Any]] = {
    "index": _index,
    "default": _default,
    "lower": lambda s: _to_str(s).lower(),
    "upper": lambda s: _to_str(s).upper(),
    "title": lambda s: _to_str(s).title(),
    "trim": lambda s: _to_str(s).strip(),
    "trimPrefix": lambda p, s: _to_str(s).removeprefix(p),
    "trimSuffix": lambda p, s: _to_str(s).removesuffix(p),
    "trimAll": lambda c, s: _to_str(s).strip(c),
    "replace": lambda old, new, s: _to_str(s).replace(old, new),
    "printf": _printf,
    "print": lambda *a: "".join(_to_str(x) for x in a),
    "quote": lambda *a: " ".join(json.dumps(_to_str(x)) for x in a),
    "squote": lambda *a: " ".join(f"'{_to_str(x)}'" for x in a),
    "toJson": lambda v: json.dumps(
        None if isinstance(v, _Missing) else v, separators=(",", ":"), sort_keys=True
    ),
    "toYaml": lambda v: yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n"),
    "normalize": lambda s: _normalize(_to_str(s)),
    "slugify": lambda s, *a: _slugify(_to_str(s)),
    "trunc": _trunc,
    "substr": lambda start, end, s: _to_str(s)[start:end],
    "contains": lambda sub, s: sub in _to_str(s),
    "hasPrefix": lambda p, s: _to_str(s).startswith(p),
    "hasSuffix": lambda p, s: _to_str(s).endswith(p),
    "join": lambda sep, items: sep.join(_to_str(i) for i in items),
    "split": lambda sep, s: {f"_{i}": p for i, p in enumerate(_to_str(s).split(sep))},
    "splitList": lambda sep, s: _to_str(s).split(sep),
    "toString": _to_str,
    "len": lambda v: len(v),
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "not": lambda v: not _truthy(v),
    "and": lambda *a: next((x for x in a if not _truthy(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truthy(x)), a[-1]),
    "empty": lambda v: not _truthy(v),
    "coalesce": lambda *a: next((x for x in a if _truthy(x)), None),
    "ternary": lambda t, f, c: t if _truthy(c) else f,
    "first": lambda v: v[0] if v else None,
    "last": lambda v: v[-1] if v else None,
    "base": lambda s: _to_str(s).rstrip("/").rsplit("/", 1)[-1],
    "dir": lambda s: _to_str(s).rstrip("/").rsplit("/", 1)[0] if "/" in _to_str(s) else ".",
    "regexReplaceAll": lambda rx, s, repl: re.sub(rx, repl.replace("$", "\\"), _to_str(s)),
    "list": lambda *a: list(a),
    "cat": lambda *a: " ".join(_to_str(x) for x in a if x is not None),
}


@dataclass
class _Node:
    kind: str  # text | action | if
    text: str = ""
    branches: list[tuple[str | None, list[_Node]]] | None = None


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def _parse(src: str) -> list[_Node]:
    pieces: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(src):
        text = src[pos : m.start()]
        if m.group(1):
            text = text.rstrip()
        if pieces and pieces[-1][0] == "trim-next":
            pieces.pop()
            text = text.lstrip()
        pieces.append(("text", text))
        pieces.append(("action", m.group(2).strip()))
        if m.group(3):
            pieces.append(("trim-next", ""))
        pos = m.end()
    tail = src[pos:]
    if pieces and pieces[-1][0] == "trim-next":
        pieces.pop()
        tail = tail.lstrip()
    pieces.append(("text", tail))

    root: list[_Node] = []
    stack: list[tuple[_Node, list[_Node]]] = []
    current = root
    for kind, value in pieces:
        if kind == "text":
            if value:
                current.append(_Node("text", value))
            continue
        if value.startswith("/*"):
            continue
        word = value.split(None, 1)[0] if value else ""
        rest = value[len(word) :].strip()
        if word == "if":
            node = _Node("if", branches=[(rest, [])])
            current.append(node)
            stack.append((node, current))
            current = node.branches[0][1]  # type: ignore[index]
        elif word == "else":
            if not stack:
                raise TemplateError("{{else}} without {{if}}")
            node = stack[-1][0]
            cond: str | None = None
            if rest.startswith("if "):
                cond = rest[3:].strip()
            assert node.branches is not None
            node.branches.append((cond, []))
            current = node.branches[-1][1]
        elif word == "end":
            if not stack:
                raise TemplateError("{{end}} without {{if}}")
            current = stack.pop()[1]
        elif word in ("range", "with", "define", "template", "block") or value.startswith("$"):
            raise TemplateError(f"`{word}` is not supported in ApplicationSet templates by gitops-bot")
        else:
            current.append(_Node("action", value))
    if stack:
        raise TemplateError("unclosed {{if}}")
    return root


class _Evaluator:
    def __init__(self, data: Any, missing_error: bool) -> None:
        self.data = data
        self.missing_error = missing_error

    def field(self, chain: str) -> Any:
        if chain == ".":
            return self.data
        value = self.data
        for part in chain.strip(".").split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif self.missing_error:
                raise TemplateError(f"map has no entry for key {part!r}")
            else:
                return MISSING
        return value

    def pipeline(self, tokens: list[tuple[str, str]], pos: int = 0) -> tuple[Any, int]:
        value: Any = MISSING
        first = True
        while True:
            args: list[Any] = []
            func: str | None = None
            while pos < len(tokens) and tokens[pos] != ("op", "|") and tokens[pos] != ("op", ")"):
                kind, text = tokens[pos]
                if kind == "ident" and func is None and not args:
                    if text in ("true", "false"):
                        args.append(text == "true")
                    elif text == "nil":
                        args.append(None)
                    else:
                        func = text
                    pos += 1
                    continue
                if kind == "op" and text == "(":
                    sub, pos = self.pipeline(tokens, pos + 1)
                    if pos >= len(tokens) or tokens[pos] != ("op", ")"):
                        raise TemplateError("unbalanced parentheses")
                    args.append(sub)
                    pos += 1
                    continue
                args.append(self.operand(kind, text))
                pos += 1
            if not first:
                args.append(value)
            if func is not None:
                if func not in FUNCS:
                    raise TemplateError(f'function "{func}" not defined')
                try:
                    value = FUNCS[func](*args)
                except TypeError as exc:
                    raise TemplateError(f"wrong arguments for {func}: {exc}") from exc
            elif len(args) == 1:
                value = args[0]
            else:
                raise TemplateError("can't give argument to non-function")
            if isinstance(value, _Missing) and self.missing_error:
                raise TemplateError("map has no entry for key")
            first = False
            if pos < len(tokens) and tokens[pos] == ("op", "|"):
                pos += 1
                continue
            return value, pos

    def operand(self, kind: str, text: str) -> Any:
        if kind == "str":
            return json.loads(text)
        if kind == "raw":
            return text[1:-1]
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "field":
            return self.field(text)
        raise TemplateError(f"unexpected {text!r}")

    def eval(self, src: str) -> Any:
        tokens = _tokenize(src)
        value, pos = self.pipeline(tokens)
        if pos != len(tokens):
            raise TemplateError(f"unexpected {tokens[pos][1]!r} in {src!r}")
        return value

    def run(self, nodes: list[_Node]) -> str:
        out: list[str] = []
        for node in nodes:
            if node.kind == "text":
                out.append(node.text)
            elif node.kind == "action":
                out.append(_to_str(self.eval(node.text)))
            else:
                assert node.branches is not None
                for cond, body in node.branches:
                    if cond is None or _truthy(self.eval(cond)):
                        out.append(self.run(body))
                        break
        return "".join(out)


def render_go(template: str, data: Any, *, missing_error: bool = False) -> str:
    """Render a Go text/template string with ``data`` as dot."""
    if "{{" not in template:
        return template
    return _Evaluator(data, missing_error).run(_parse(template))


_FAST = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def render_fast(template: str, params: dict[str, str]) -> str:
    """Render an Argo CD fasttemplate string: ``{{key}}`` replaced, unknown keys left as they are."""
    if "{{" not in template:
        return template

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        return params[key] if key in params else m.group(0)

    return _FAST.sub(sub, template)
