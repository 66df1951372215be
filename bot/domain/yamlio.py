"""Safe YAML reading for untrusted repository content, with line numbers.

Every YAML file the bot reads comes from a pull request, so reading is defensive:
size, nesting depth and alias counts are bounded (an alias bomb is refused before it is
expanded), duplicate keys are errors, and every error carries a line and column.
Mappings keep their positions (ruamel.yaml round-trip nodes), so checkers can pin a
finding to the line of a key: :func:`line_of`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from bot.domain.model import Finding, Severity

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 256


class YamlError(ValueError):
    """A YAML file could not be read; ``finding`` pins the problem to its line."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(f"{finding.path}:{finding.line}: {finding.message}")
        self.finding = finding


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """One document of a (possibly multi-document) YAML file."""

    path: str
    index: int
    line: int
    data: Any


def _yaml() -> YAML:
    y = YAML(typ="rt", pure=True)
    y.allow_duplicate_keys = False
    return y


def _error(path: str, message: str, line: int = 1, column: int | None = None, hint: str = "") -> YamlError:
    return YamlError(Finding("yaml.syntax", Severity.ERROR, path, line, message, hint, column))


def _precheck(text: str, path: str) -> None:
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise _error(
            path, f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB", hint="Split it into smaller files."
        )
    if "\x00" in text:
        raise _error(path, "file is binary, not YAML", hint="Keep binary files out of manifest folders.")
    depth = 0
    aliases = 0
    try:
        for event in _yaml().parse(io.StringIO(text)):
            if isinstance(event, MappingStartEvent | SequenceStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else 1
                    raise _error(path, f"nesting deeper than {MAX_DEPTH} levels", line)
            elif isinstance(event, MappingEndEvent | SequenceEndEvent):
                depth -= 1
            elif isinstance(event, AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    line = event.start_mark.line + 1 if event.start_mark else 1
                    raise _error(
                        path,
                        f"more than {MAX_ALIASES} YAML aliases (possible alias bomb)",
                        line,
                        hint="Write the values out instead of using anchors and aliases.",
                    )
    except MarkedYAMLError as exc:
        raise _from_marked(exc, path) from exc
    except YAMLError as exc:
        raise _error(path, str(exc)) from exc


def _from_marked(exc: MarkedYAMLError, path: str) -> YamlError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    column = mark.column + 1 if mark is not None else None
    if isinstance(exc, DuplicateKeyError):
        key = (exc.problem or "").strip()
        return YamlError(
            Finding(
                "yaml.duplicate-key",
                Severity.ERROR,
                path,
                line,
                f"duplicate key: {key}" if key else "duplicate key",
                "Remove one of the two keys; YAML keeps only the last one.",
                column,
            )
        )
    problem = exc.problem or exc.context or "invalid YAML"
    return _error(path, f"YAML syntax error: {problem}", line, column, "Fix the YAML syntax at this line.")


def iter_documents(text: str, path: str) -> Iterator[YamlDocument]:
    """Yield the documents of ``text``; raise :class:`YamlError` on the first problem."""
    _precheck(text, path)
    try:
        for index, data in enumerate(_yaml().load_all(io.StringIO(text))):
            line = 1
            if isinstance(data, CommentedMap | CommentedSeq):
                line = data.lc.line + 1
            yield YamlDocument(path=path, index=index, line=line, data=data)
    except MarkedYAMLError as exc:
        raise _from_marked(exc, path) from exc
    except YAMLError as exc:
        raise _error(path, str(exc)) from exc


def load_documents(text: str, path: str) -> list[YamlDocument]:
    """Return every non-empty document of ``text`` (see :func:`iter_documents`)."""
    return [d for d in iter_documents(text, path) if d.data is not None]


def load_yaml_text(text: str, path: str) -> Any:
    """Load a single-document YAML text into plain Python values."""
    docs = load_documents(text, path)
    if not docs:
        return None
    return to_plain(docs[0].data, path)


MAX_NODES = 2_000_000


def to_plain(value: Any, path: str = "<yaml>") -> Any:
    """Convert ruamel round-trip nodes into plain dicts, lists and scalars.

    Aliases are expanded here, so the number of nodes produced is bounded by
    :data:`MAX_NODES`: a few aliases that multiply (an alias bomb) raise
    :class:`YamlError` instead of exhausting memory.
    """
    _check_expansion(value, path)
    budget = [MAX_NODES]

    def conv(v: Any) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise _error(
                path,
                "document expands to too many nodes (possible alias bomb)",
                hint="Write the values out instead of using anchors and aliases.",
            )
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            return float(v)
        return str(v)

    return conv(value)


def _check_expansion(value: Any, path: str) -> None:
    """Raise :class:`YamlError` when ``value`` would expand past :data:`MAX_NODES` or into itself.

    Counted over the node graph with one visit per shared node, so a billion-laughs file
    is refused in microseconds instead of after expanding two million nodes.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(v: Any) -> int:
        if not isinstance(v, dict | list):
            return 1
        known = sizes.get(id(v))
        if known is not None:
            return known
        if id(v) in open_nodes:
            raise _error(path, "a YAML alias refers to the node that contains it", hint=_ALIAS_HINT)
        open_nodes.add(id(v))
        children = v.values() if isinstance(v, dict) else v
        total = 1 + sum(size(x) for x in children)
        open_nodes.discard(id(v))
        if total > MAX_NODES:
            raise _error(path, "document expands to too many nodes (possible alias bomb)", hint=_ALIAS_HINT)
        sizes[id(v)] = total
        return total

    size(value)


_ALIAS_HINT = "Write the values out instead of using anchors and aliases."


def line_of(node: Any, key: str | int | None = None, default: int = 1) -> int:
    """Return the 1-based line of ``node`` (or of ``key`` inside it) when known."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return default
    try:
        if key is None:
            return int(lc.line) + 1
        if isinstance(node, CommentedMap) and key in node:
            return int(lc.key(key)[0]) + 1
        if isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
            return int(lc.item(key)[0]) + 1
    except (KeyError, IndexError, TypeError):
        return default
    return default


def line_of_path(root: Any, path: list[str | int], default: int = 1) -> int:
    """Return the line of the deepest existing element along ``path`` under ``root``."""
    node = root
    line = line_of(root, None, default)
    for part in path:
        if isinstance(node, dict) and part in node:
            line = line_of(node, part, line)
            node = node[part]
            continue
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            line = line_of(node, part, line)
            node = node[part]
            continue
        break
    return line
