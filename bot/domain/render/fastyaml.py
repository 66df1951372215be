"""A fast path for reading repository YAML in bulk, with the same limits as :mod:`bot.domain.yamlio`.

Discovery reads every kustomization and every Flux/Argo CD manifest of a fleet; the
round-trip reader costs milliseconds per file, which dominates on a fleet of hundreds
of clusters. This reader uses libyaml (``CSafeLoader``) and checks the composed node
graph for what yamlio refuses (size, nesting depth, duplicate keys). Anything unusual
(an alias, a syntax error, a duplicate key) falls back to :mod:`bot.domain.yamlio`, so
problems are reported with yamlio's findings and line numbers, exactly as elsewhere.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import yaml

from bot.domain import yamlio


class _Fallback(Exception):
    pass


def _check(node: yaml.Node, depth: int, seen: set[int]) -> None:
    if id(node) in seen:
        raise _Fallback  # an alias: let yamlio count and bound them
    seen.add(id(node))
    if depth > yamlio.MAX_DEPTH:
        raise _Fallback
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in keys or key.tag == "tag:yaml.org,2002:merge":
                    raise _Fallback
                keys.add(key.value)
            _check(key, depth + 1, seen)
            _check(value, depth + 1, seen)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check(item, depth + 1, seen)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # timestamps, binary: as text, as yamlio.to_plain does


_MEMO: dict[tuple[str, str], list[tuple[int, Any]]] = {}
_MEMO_LOCK = threading.Lock()
MEMO_ENTRIES = 50_000


def load_docs_shared(text: str, path: str) -> list[tuple[int, Any]]:
    """Like :func:`load_docs`, memoised by path and content; callers must not modify the result.

    The base and head trees of a pull request share almost every file, and a long-running
    bot reads the same files for every pull request: each distinct file is parsed once.
    """
    key = (path, hashlib.sha1(text.encode("utf-8", errors="replace"), usedforsecurity=False).hexdigest())
    with _MEMO_LOCK:
        hit = _MEMO.get(key)
    if hit is not None:
        return hit
    docs = load_docs(text, path)
    with _MEMO_LOCK:
        if len(_MEMO) >= MEMO_ENTRIES:
            _MEMO.clear()
        _MEMO[key] = docs
    return docs


def load_docs(text: str, path: str) -> list[tuple[int, Any]]:
    """Return (line, plain data) for each non-empty document; raise :class:`yamlio.YamlError`.

    Without an anchor (``&``) there can be no alias, so no alias bomb: the node graph
    check is skipped and libyaml's result is used as is (a duplicate key keeps its last
    value here; the validation checkers report duplicates through yamlio).
    """
    if len(text.encode("utf-8", errors="replace")) > yamlio.MAX_BYTES or "\x00" in text:
        return _slow(text, path)
    if "&" not in text:
        try:
            loaded = list(yaml.load_all(text, Loader=yaml.CSafeLoader))
        except (yaml.YAMLError, RecursionError):
            return _slow(text, path)
        lines = _doc_lines(text)
        if len(lines) != len(loaded):
            lines = [1] * len(loaded)
        return [(line, _plain(d)) for line, d in zip(lines, loaded, strict=True) if d is not None]
    loader = yaml.CSafeLoader(text)
    docs: list[tuple[int, Any]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            _check(node, 1, set())
            data = loader.construct_document(node)
            if data is not None:
                docs.append((node.start_mark.line + 1, _plain(data)))
    except (_Fallback, yaml.YAMLError, RecursionError):
        return _slow(text, path)
    finally:
        loader.dispose()
    return docs


def _doc_lines(text: str) -> list[int]:
    """Return the first content line of each document of a YAML stream (1-based)."""
    starts: list[int] = []
    current: int | None = None
    seen_content = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("---"):
            if seen_content:
                starts.append(current or number)
            current = None
            seen_content = True
            rest = line[3:].strip()
            if rest and not rest.startswith("#"):
                current = number
            continue
        if not line or line.startswith("#") or line.startswith("%"):
            continue
        if line == "...":
            continue
        seen_content = True
        if current is None:
            current = number
    if seen_content:
        starts.append(current or 1)
    return starts


def load_one(text: str, path: str) -> Any:
    """Return the first document of ``text`` as plain data (None when empty)."""
    docs = load_docs(text, path)
    return docs[0][1] if docs else None


def _slow(text: str, path: str) -> list[tuple[int, Any]]:
    return [(d.line, yamlio.to_plain(d.data, path)) for d in yamlio.load_documents(text, path)]
