"""A fast path for reading repository YAML in bulk, with the same limits as :mod:`bot.domain.yamlio`.

Discovery reads every kustomization and every Flux/Argo CD manifest of a fleet; the
round-trip reader costs milliseconds per file, which dominates on a fleet of hundreds
of clusters. This reader uses libyaml (``CSafeLoader``) and checks the composed node
graph for what yamlio refuses (size, nesting depth, duplicate keys). Anything unusual
(an alias, a syntax error, a duplicate key) falls back to :mod:`bot.domain.yamlio`, so
problems are reported with yamlio's findings and line numbers, exactly as elsewhere.

libyaml parses and composes nodes in C, but PyYAML builds Python objects from them in
pure Python (a constructor method per node, a resolver call per scalar), which was most
of the cost. Here nodes are composed by libyaml with a memoised resolver (the same
YAML 1.1 rules, asked once per distinct plain scalar) and turned into Python objects by
one tight function, :func:`_convert`, for what fleets are made of: mappings with scalar
keys, sequences, strings, integers, floats, booleans and nulls. Anything else (a
timestamp, a merge key ``<<``, an explicit or unknown tag, a collection used as a key,
a syntax error) makes the whole text go the way it went before, through PyYAML's own
constructor, so every input gives exactly what it gave before (a property test compares
both over generated YAML and every YAML file of the repository).
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Any

import yaml
from ruamel.yaml import nodes as ruamel_nodes
from ruamel.yaml.resolver import VersionedResolver

from bot.domain import yamldump, yamlio
from bot.domain.yamldump import MemoResolve


class _Fallback(Exception):
    pass


class _Unsupported(Exception):
    """A node :func:`_convert` leaves to PyYAML's constructor."""


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_SCALARS = yaml.constructor.SafeConstructor()
_SCALAR_BUILDERS: dict[str, Any] = {
    _INT: _SCALARS.construct_yaml_int,
    _FLOAT: _SCALARS.construct_yaml_float,
    _BOOL: _SCALARS.construct_yaml_bool,
    _NULL: _SCALARS.construct_yaml_null,
}
MEMO_SCALARS = 100_000
_VALUES: dict[tuple[str, str], Any] = {}


class _Loader(MemoResolve, yaml.CSafeLoader):
    """libyaml's safe loader whose scalar resolution is memoised (same tags, asked once per value)."""


def _scalar(node: yaml.ScalarNode) -> Any:
    """Return a non-string scalar as PyYAML's SafeConstructor builds it (memoised: all are immutable)."""
    key = (node.tag, node.value)
    try:
        return _VALUES[key]
    except KeyError:
        pass
    builder = _SCALAR_BUILDERS.get(node.tag)
    if builder is None:
        raise _Unsupported(node.tag)
    value = builder(node)
    if len(_VALUES) >= MEMO_SCALARS:
        _VALUES.clear()
    _VALUES[key] = value
    return value


def _convert(node: yaml.Node, plain: bool) -> Any:
    """Build the object PyYAML's SafeConstructor builds from ``node`` (``_plain`` applied when ``plain``).

    Raises :class:`_Unsupported` (or whatever a scalar builder raises) for anything else;
    the caller then gives the text to PyYAML's constructor.
    """
    cls = type(node)
    if cls is yaml.ScalarNode:
        return node.value if node.tag == _STR else _scalar(node)
    if cls is yaml.MappingNode:
        if node.tag != _MAP:
            raise _Unsupported(node.tag)
        out: dict[Any, Any] = {}
        for key, value in node.value:
            if type(key) is not yaml.ScalarNode or key.tag != _STR:
                return _convert_mapping(node, plain)
            out[key.value] = _convert(value, plain)
        return out
    if cls is yaml.SequenceNode:
        if node.tag != _SEQ:
            raise _Unsupported(node.tag)
        return [_convert(item, plain) for item in node.value]
    raise _Unsupported(cls.__name__)


def _convert_mapping(node: yaml.MappingNode, plain: bool) -> dict[Any, Any]:
    """Convert a mapping with a non-string key: keys as PyYAML builds them (1 and true are one key)."""
    out: dict[Any, Any] = {}
    for key, value in node.value:
        if type(key) is not yaml.ScalarNode:
            raise _Unsupported("a collection as a key")
        out[key.value if key.tag == _STR else _scalar(key)] = _convert(value, plain)
    return {str(k): v for k, v in out.items()} if plain else out


def _fast_all(text: str, plain: bool) -> list[Any]:
    """Return every document of ``text`` converted by :func:`_convert` (None for an empty one)."""
    loader = _Loader(text)
    try:
        docs = []
        while loader.check_node():
            node = loader.get_node()
            docs.append(None if node is None else _convert(node, plain))
        return docs
    finally:
        loader.dispose()


def load_all(text: str) -> list[Any]:
    """Return ``list(yaml.load_all(text, Loader=yaml.CSafeLoader))``, faster for the usual YAML.

    Same objects, same exceptions: anything :func:`_convert` does not handle is loaded by
    PyYAML's own constructor.
    """
    if "&" not in text:
        try:
            return _fast_all(text, plain=False)
        except Exception:  # noqa: S110 - PyYAML's constructor decides, and raises what it raises
            pass
    return list(yaml.load_all(text, Loader=yaml.CSafeLoader))


def load(text: str) -> Any:
    """Return ``yaml.load(text, Loader=yaml.CSafeLoader)``, faster (see :func:`load_all`)."""
    if "&" not in text:
        try:
            docs = _fast_all(text, plain=False)
        except Exception:  # noqa: S110 - PyYAML's constructor decides, and raises what it raises
            pass
        else:
            if len(docs) <= 1:
                return docs[0] if docs else None
    return yaml.load(text, Loader=yaml.CSafeLoader)


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
    docs = _load_docs(text, path, shared=True)
    with _MEMO_LOCK:
        if len(_MEMO) >= MEMO_ENTRIES:
            _MEMO.clear()
        _MEMO[key] = docs
    return docs


def forget() -> None:
    """Empty every memo of this module, so the next read costs what it costs in a fresh process."""
    with _MEMO_LOCK:
        _MEMO.clear()
    _DOCS.clear()
    _VALUES.clear()
    yamldump.forget()


_DOCS: dict[str, list[Any]] = {}
MEMO_DOCUMENTS = 20_000
_ANY_MARKER = re.compile(r"^(?:---|\.\.\.|%)", re.MULTILINE)
_DOC_START = re.compile(r"^---\n", re.MULTILINE)
_ODD_BREAKS = ("\r", "\x85", "\u2028", "\u2029", "\ufeff")


def _split_documents(text: str) -> list[str] | None:
    """Cut a stream before each ``---`` line, when parsing the pieces one by one is parsing it whole.

    Only when every line starting with ``---``, ``...`` or ``%`` is exactly ``---`` (no
    directive, no document end, nothing after the marker) and lines end in ``\n`` only: libyaml
    then starts a new document at each such line with nothing carried over (indentation,
    simple keys, anchors, tags), so the documents of the whole are the pieces' documents
    in order. Otherwise None.
    """
    if any(c in text for c in _ODD_BREAKS):
        return None
    starts = [m.start() for m in _DOC_START.finditer(text)]
    if not starts or sum(1 for _ in _ANY_MARKER.finditer(text)) != len(starts):
        return None
    bounds = [0, *starts] if starts[0] else starts
    return [text[a:b] for a, b in zip(bounds, [*bounds[1:], len(text)], strict=True)]


def _fast_docs(text: str, shared: bool) -> list[Any]:
    """Convert every document of ``text`` (plain); with ``shared``, identical documents are converted once.

    Fleets repeat documents (the same Flux Kustomization in every cluster folder): each
    distinct ``---`` piece (see :func:`_split_documents`) is converted once and its result
    shared, so callers must not modify it. Raises what :func:`_fast_all` raises.
    """
    pieces = _split_documents(text) if shared else None
    if pieces is None:
        return _fast_all(text, plain=True)
    loaded: list[Any] = []
    for piece in pieces:
        docs = _DOCS.get(piece)
        if docs is None:
            docs = _fast_all(piece, plain=True)
            if len(_DOCS) >= MEMO_DOCUMENTS:
                _DOCS.clear()
            _DOCS[piece] = docs
        loaded.extend(docs)
    return loaded


def load_docs(text: str, path: str) -> list[tuple[int, Any]]:
    """Return (line, plain data) for each non-empty document; raise :class:`yamlio.YamlError`.

    Without an anchor (``&``) there can be no alias, so no alias bomb: the node graph
    check is skipped and libyaml's result is used as is (a duplicate key keeps its last
    value here; the validation checkers report duplicates through yamlio).
    """
    return _load_docs(text, path, shared=False)


def _load_docs(text: str, path: str, *, shared: bool) -> list[tuple[int, Any]]:
    if len(text.encode("utf-8", errors="replace")) > yamlio.MAX_BYTES or "\x00" in text:
        return _slow(text, path)
    if "&" not in text:
        try:
            loaded = _fast_docs(text, shared)
        except Exception:  # PyYAML's constructor decides, and raises what it raises
            try:
                constructed = list(yaml.load_all(text, Loader=yaml.CSafeLoader))
            except (yaml.YAMLError, RecursionError):
                return _slow(text, path)
            loaded = [_plain(d) for d in constructed]
        lines = _doc_lines(text)
        if len(lines) != len(loaded):
            lines = [1] * len(loaded)
        return [(line, d) for line, d in zip(lines, loaded, strict=True) if d is not None]
    loader = _Loader(text)
    docs: list[tuple[int, Any]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            _check(node, 1, set())
            try:
                data = _convert(node, plain=True)
            except Exception:  # PyYAML's constructor decides, and raises what it raises
                data = _plain(loader.construct_document(node))
            if data is not None:
                docs.append((node.start_mark.line + 1, data))
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


_RESOLVER_12 = VersionedResolver(version=(1, 2))
_INT_12 = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT_12 = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+\Z")
_WORDS_12 = frozenset({"true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL", "~", ""})
_DIRECTIVE = re.compile(r"^%", re.MULTILINE)


def _same_in_12(node: yaml.Node, depth: int) -> bool:
    """Whether libyaml's YAML 1.1 reading of ``node`` is what a YAML 1.2 reader (yamlio's) makes of it.

    Strings are strings in both, plain decimals, ``true``/``false`` and ``null``/``~`` read the same;
    anything else (``yes``, ``010``, ``1e3``, a timestamp, an explicit tag, a duplicate or merge
    key, too deep) answers False.
    """
    if depth > yamlio.MAX_DEPTH:
        return False
    if isinstance(node, yaml.ScalarNode):
        if node.style:  # quoted or block: a string, unless tagged (plain: None, or "" from libyaml)
            return node.tag == _STR
        tag = _RESOLVER_12.resolve(ruamel_nodes.ScalarNode, node.value, (True, False))
        if node.tag != tag:
            return False
        if tag == _STR:
            return True
        if tag == _INT:
            return bool(_INT_12.match(node.value))
        if tag == _FLOAT:
            return bool(_FLOAT_12.match(node.value))
        return tag in (_BOOL, _NULL) and node.value in _WORDS_12
    if isinstance(node, yaml.MappingNode):
        if node.tag != _MAP:
            return False
        keys: set[str] = set()
        for key, value in node.value:
            if not (isinstance(key, yaml.ScalarNode) and key.tag == _STR and _same_in_12(key, depth + 1)):
                return False
            if key.value in keys:
                return False
            keys.add(key.value)
            if not _same_in_12(value, depth + 1):
                return False
        return True
    if isinstance(node, yaml.SequenceNode):
        return node.tag == _SEQ and all(_same_in_12(item, depth + 1) for item in node.value)
    return False


def load_plain_12(text: str) -> tuple[bool, Any]:
    """``(True, data)`` when ``data`` is what :func:`bot.domain.yamlio.load_yaml_text` returns for ``text``
    (one document, plain values), read by libyaml; ``(False, None)`` when that cannot be sure.

    yamlio reads YAML 1.2 with a pure-Python parser (with a second pass for its limits): on a
    configuration with a registry of hundreds of clusters that is most of a command's time.
    Only texts whose every scalar reads the same in YAML 1.1 and 1.2 (see :func:`_same_in_12`),
    without anchors, directives or duplicate keys, within yamlio's size and depth limits, are
    answered here; the caller reads the others with yamlio (which also words the errors).
    """
    if len(text.encode("utf-8", errors="replace")) > yamlio.MAX_BYTES or "\x00" in text:
        return False, None
    if "&" in text or _DIRECTIVE.search(text):
        return False, None
    loader = _Loader(text)
    try:
        nodes = []
        while loader.check_node():
            nodes.append(loader.get_node())
    except (yaml.YAMLError, RecursionError):
        return False, None
    finally:
        loader.dispose()
    nodes = [n for n in nodes if n is not None]
    if not nodes:
        return True, None
    if len(nodes) > 1 or not _same_in_12(nodes[0], 1):
        return False, None
    try:
        return True, _convert(nodes[0], plain=True)
    except Exception:  # anything unusual is yamlio's to read
        return False, None
