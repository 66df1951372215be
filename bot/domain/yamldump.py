"""Dump plain data as block YAML exactly as PyYAML's libyaml dumper does, in less time.

``yaml.dump(data, Dumper=yaml.CSafeDumper, ...)`` emits in C but builds the node tree in
Python, one representer call per value with alias bookkeeping, and asks the resolver
twice per scalar. A rendered diff dumps every changed object and Flux substitution dumps
every object it substitutes, so this is most of the time of a change to a shared base.
:func:`dump` builds the same nodes with one tight function for the usual data (dicts
with string keys, lists, strings, integers, floats, booleans, None, each container met
once) and hands them to the same C emitter, with scalar resolution memoised
(:class:`MemoResolve`). Anything else (a date, bytes, a tuple, a non-string key, a
container met twice, which PyYAML writes as an anchor) is dumped by PyYAML itself, so
the text is always the text ``yaml.dump`` gives (a property test compares both).

With ``block_strings=True`` (the rendered diff) a string holding a line break is written in
literal block style (``|``) whenever the emitter allows it (no trailing spaces before a
break, printable text), so a one-word change in an embedded dashboard JSON or Rego policy
is one changed line of the diff, not one long escaped line; the fallback is PyYAML's
dumper with the same rule (:class:`BlockDumper`).
"""

from __future__ import annotations

import io
from typing import Any

import yaml

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
MEMO_SCALARS = 100_000
_TAGS: dict[tuple[Any, Any], Any] = {}


class MemoResolve:
    """Mixin for PyYAML loaders and dumpers: the tag of a scalar is computed once per distinct value.

    Same answer as :meth:`yaml.resolver.Resolver.resolve` (it computes every miss); fleets
    repeat the same keys and values (``apiVersion``, ``kind``, ``namespace``) thousands of times.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode:
            key = (value, implicit)
            tag = _TAGS.get(key)
            if tag is None:
                tag = yaml.resolver.Resolver.resolve(self, kind, value, implicit)
                if len(_TAGS) >= MEMO_SCALARS:
                    _TAGS.clear()
                _TAGS[key] = tag
            return tag
        return yaml.resolver.Resolver.resolve(self, kind, value, implicit)


def forget() -> None:
    """Empty the scalar resolution memo (so a benchmark's cold run starts as a fresh process)."""
    _TAGS.clear()


class _Dumper(MemoResolve, yaml.CSafeDumper):
    pass


class BlockDumper(yaml.CSafeDumper):
    """PyYAML's C dumper, but multi-line strings ask for literal block style (``|``)."""

    def represent_str(self, data: str) -> yaml.ScalarNode:
        node: yaml.ScalarNode = super().represent_str(data)
        if "\n" in data:
            node.style = "|"
        return node


BlockDumper.add_representer(str, BlockDumper.represent_str)


class _BlockFastDumper(MemoResolve, BlockDumper):
    pass


class _Unsupported(Exception):
    """A value :func:`_represent` leaves to PyYAML's representer."""


_SCALARS = yaml.representer.SafeRepresenter()
_SCALAR_TYPES: dict[type, Any] = {
    bool: _SCALARS.represent_bool,
    int: _SCALARS.represent_int,
    float: _SCALARS.represent_float,
    type(None): _SCALARS.represent_none,
}


def _string(text: str, block: bool) -> yaml.ScalarNode:
    return yaml.ScalarNode(_STR, text, style="|" if block and "\n" in text else None)


def _represent(data: Any, sort_keys: bool, seen: set[int], block: bool = False) -> yaml.Node:
    """Build the node PyYAML's SafeRepresenter builds for ``data`` (block style); else raise _Unsupported.

    ``block``: multi-line strings ask for literal style, as :class:`BlockDumper` does.
    """
    kind = type(data)
    if kind is str:
        return _string(data, block)
    if kind is dict:
        if id(data) in seen:
            raise _Unsupported("a mapping met twice")
        seen.add(id(data))
        items = list(data.items())
        for key, _value in items:
            if type(key) is not str:
                raise _Unsupported("a key that is not a string")
        if sort_keys:
            items.sort()  # keys are distinct strings: values are never compared
        # keys too: the block dumper's representer asks for literal style on every multi-line string
        pairs = [(_string(k, block), _represent(v, sort_keys, seen, block)) for k, v in items]
        return yaml.MappingNode(_MAP, pairs, flow_style=False)
    if kind is list:
        if id(data) in seen:
            raise _Unsupported("a sequence met twice")
        seen.add(id(data))
        return yaml.SequenceNode(
            _SEQ, [_represent(v, sort_keys, seen, block) for v in data], flow_style=False
        )
    scalar = _SCALAR_TYPES.get(kind)
    if scalar is None:
        raise _Unsupported(kind.__name__)
    node: yaml.Node = scalar(data)
    return node


def dump(data: Any, *, sort_keys: bool, width: int = 10_000, block_strings: bool = False) -> str:
    """Return ``yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=sort_keys, width=width)`` (block style).

    ``block_strings``: the same with :class:`BlockDumper` (multi-line strings as ``|`` blocks).
    """
    try:
        node = _represent(data, sort_keys, set(), block_strings)
    except (_Unsupported, RecursionError):
        text: str = yaml.dump(
            data,
            Dumper=BlockDumper if block_strings else yaml.CSafeDumper,
            sort_keys=sort_keys,
            default_flow_style=False,
            width=width,
        )
        return text
    stream = io.StringIO()
    cls = _BlockFastDumper if block_strings else _Dumper
    dumper = cls(stream, default_flow_style=False, width=width, sort_keys=sort_keys)
    try:
        dumper.open()
        dumper.serialize(node)
        dumper.close()
    finally:
        dumper.dispose()
    return stream.getvalue()
