"""A fast path for reading repository YAML in bulk, with the same limits as :mod:`bot.domain.yamlio`.

Discovery reads every kustomization and every Flux/Argo CD manifest of a fleet; the
round-trip reader costs milliseconds per file, which dominates on a fleet of hundreds
of clusters. This reader uses libyaml (``CSafeLoader``) and checks the composed node
graph for what yamlio refuses (size, nesting depth, duplicate keys). Anything unusual
(an alias, a syntax error, a duplicate key) falls back to :mod:`bot.domain.yamlio`, so
problems are reported with yamlio's findings and line numbers, exactly as elsewhere.
"""

from __future__ import annotations

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


def load_docs(text: str, path: str) -> list[tuple[int, Any]]:
    """Return (line, plain data) for each non-empty document; raise :class:`yamlio.YamlError`."""
    if len(text.encode("utf-8", errors="replace")) > yamlio.MAX_BYTES or "\x00" in text:
        return _slow(text, path)
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


def load_one(text: str, path: str) -> Any:
    """Return the first document of ``text`` as plain data (None when empty)."""
    docs = load_docs(text, path)
    return docs[0][1] if docs else None


def _slow(text: str, path: str) -> list[tuple[int, Any]]:
    return [(d.line, yamlio.to_plain(d.data, path)) for d in yamlio.load_documents(text, path)]
