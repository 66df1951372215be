"""kro SimpleSchema: parse ``"integer | default=3 minimum=1"`` leaves into JSON Schema.

Types: ``string``, ``integer``, ``boolean``, ``float`` (JSON ``number``), ``object``
(unstructured), ``[]T``, ``map[string]T`` and custom type names from ``spec.schema.types``
(expanded inline; cycles between them are errors). Markers follow kro's list; an unknown
marker, a malformed one, a marker on the wrong type or a ``default`` of the wrong type is a
:class:`SimpleSchemaError`. Rules are summarised in shared/notes/kro-resource-graphs.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

ATOMIC = {"string": "string", "integer": "integer", "boolean": "boolean", "float": "number"}
MARKERS = frozenset(
    {
        "required",
        "default",
        "description",
        "enum",
        "minimum",
        "maximum",
        "immutable",
        "pattern",
        "minLength",
        "maxLength",
        "uniqueItems",
        "minItems",
        "maxItems",
        "listType",
        "listMapKey",
        "validation",
    }
)
STRING_ONLY = {"pattern", "minLength", "maxLength"}
ARRAY_ONLY = {"uniqueItems", "minItems", "maxItems", "listType", "listMapKey"}
MAX_NESTING = 16


_NESTED_QUANTIFIER = re.compile(r"\([^()]*[+*}][^()]*\)\s*[+*{]")
MAX_PATTERN = 512


def risky_pattern(pattern: str) -> bool:
    """Return whether a regex from the repository could backtrack catastrophically (``(a+)+``) or is huge.

    Patterns come from pull requests, and Python's ``re`` has no time limit: such patterns
    are not evaluated.
    """
    return len(pattern) > MAX_PATTERN or bool(_NESTED_QUANTIFIER.search(pattern))


class SimpleSchemaError(ValueError):
    """A SimpleSchema leaf or type is invalid; the message says which part and why."""


def parse_markers(text: str) -> list[tuple[str, str]]:
    """Parse the marker part of a leaf (after ``|``) the way kro's ``ParseMarkers`` does.

    Markers are ``key=value`` separated by white space. A value may be double-quoted (with
    ``\\"`` escapes) or hold ``[...]``/``{...}`` (JSON, spaces allowed): ``default=["a", "b"]``,
    ``default={"a":"b"}``, ``validation="self > 0"``. Single quotes are ordinary characters.
    """
    markers: list[tuple[str, str]] = []
    key: str | None = None
    buffer: list[str] = []
    in_quotes = escaped = False
    brackets = 0
    for char in text:
        if char == "=" and key is None and not in_quotes and brackets == 0:
            key = "".join(buffer).strip()
            if not key:
                raise SimpleSchemaError("malformed marker: empty marker key (write key=value)")
            if key not in MARKERS:
                raise SimpleSchemaError(f"unknown marker {key!r} (known: {', '.join(sorted(MARKERS))})")
            buffer = []
        elif char == '"' and not escaped:
            in_quotes = not in_quotes
            buffer.append(char)
        elif char == "\\" and in_quotes and not escaped:
            escaped = True
            buffer.append(char)
        elif char in "{[" and not in_quotes:
            brackets += 1
            buffer.append(char)
        elif char in "}]" and not in_quotes:
            brackets -= 1
            buffer.append(char)
            if brackets < 0:
                raise SimpleSchemaError("malformed marker: unmatched closing bracket or brace")
        elif char.isspace() and not in_quotes and brackets == 0:
            if key is not None:
                markers.append((key, _marker_value("".join(buffer))))
                key, buffer = None, []
        else:
            if escaped and in_quotes:
                escaped = False
            buffer.append(char)
    if key is None:
        near = "".join(buffer)[:30]
        raise SimpleSchemaError(f"malformed marker near {near!r}: write key=value (quote values with spaces)")
    markers.append((key, _marker_value("".join(buffer))))
    if in_quotes:
        raise SimpleSchemaError("malformed marker: unclosed quote")
    if brackets > 0:
        raise SimpleSchemaError("malformed marker: unclosed bracket or brace")
    return markers


def _marker_value(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        out: list[str] = []
        escaped = False
        for char in value[1:-1]:
            if escaped:
                if char not in ('"', "\\"):
                    out.append("\\")
                out.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            else:
                out.append(char)
        return "".join(out)
    return value.strip()


def split_leaf(leaf: str) -> tuple[str, dict[str, str]]:
    """Split ``"type | k=v k2="v 2""`` into the type and its markers (kro's ``ParseField``)."""
    type_part, sep, marker_part = leaf.partition("|")
    type_name = type_part.strip()
    if not type_name:
        raise SimpleSchemaError("empty type")
    markers: dict[str, str] = {}
    for key, value in parse_markers(marker_part) if sep else []:
        if key == "listMapKey" and key in markers:
            value = markers[key] + "," + value
        markers[key] = value
    return type_name, markers


def _type_schema(
    type_name: str, types: Mapping[str, Any], seen: tuple[str, ...], depth: int
) -> dict[str, Any]:
    if depth > MAX_NESTING:
        raise SimpleSchemaError(f"type {type_name!r} is nested deeper than {MAX_NESTING} levels")
    if type_name in ATOMIC:
        return {"type": ATOMIC[type_name]}
    if type_name == "object":
        return {"type": "object"}
    if type_name.startswith("[]"):
        return {"type": "array", "items": _type_schema(type_name[2:].strip(), types, seen, depth + 1)}
    if type_name.startswith("map["):
        key, sep, value = type_name[4:].partition("]")
        if not sep:
            raise SimpleSchemaError(f"unclosed bracket in {type_name!r}")
        if key.strip() != "string":
            raise SimpleSchemaError(f"map key must be string, not {key.strip()!r} in {type_name!r}")
        if not value.strip():
            raise SimpleSchemaError(f"{type_name!r} has no value type")
        return {"type": "object", "additionalProperties": _type_schema(value.strip(), types, seen, depth + 1)}
    if type_name in types:
        if type_name in seen:
            raise SimpleSchemaError("cycle between custom types: " + " -> ".join([*seen, type_name]))
        return compile_fields(types[type_name], types, (*seen, type_name), depth + 1)
    raise SimpleSchemaError(f"unknown type {type_name!r}")


_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True}
_GO_BOOLS |= {"0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
_GO_INT = re.compile(r"^[+-]?[0-9]+$")


def parse_bool(raw: str, what: str) -> bool:
    """Parse a boolean as Go's ``strconv.ParseBool`` does (kro uses it for markers)."""
    if raw not in _GO_BOOLS:
        raise SimpleSchemaError(f"{what} {raw!r} is not a valid boolean")
    return _GO_BOOLS[raw]


def _parse_default(schema_type: str, raw: str) -> Any:
    try:
        if schema_type == "integer":
            if not _GO_INT.match(raw):
                raise ValueError(raw)
            return int(raw)
        if schema_type == "number":
            return float(raw)
        if schema_type == "boolean":
            return parse_bool(raw, "default")
        if schema_type in ("array", "object"):
            return json.loads(raw)
    except ValueError as exc:
        raise SimpleSchemaError(f"default {raw!r} is not a valid {schema_type}") from exc
    return raw


def leaf_schema(
    leaf: str, types: Mapping[str, Any], seen: tuple[str, ...] = (), depth: int = 0
) -> tuple[dict[str, Any], bool]:
    """Return the JSON Schema of one leaf and whether it is ``required``."""
    type_name, markers = split_leaf(leaf)
    schema = dict(_type_schema(type_name, types, seen, depth))
    kind = schema.get("type")
    for key in markers:
        if key in STRING_ONLY and kind != "string":
            raise SimpleSchemaError(f"marker {key!r} applies to strings only, not {type_name}")
        if key in ARRAY_ONLY and kind != "array":
            raise SimpleSchemaError(f"marker {key!r} applies to arrays only, not {type_name}")
    if "enum" in markers:
        if kind not in ("string", "integer"):
            raise SimpleSchemaError(f"enum is allowed on string or integer only, not {type_name}")
        values = [v.strip() for v in markers["enum"].split(",")]
        if any(not v for v in values):
            raise SimpleSchemaError("enum has an empty value")
        schema["enum"] = [_parse_default(str(kind), v) for v in values]
    for key in ("minimum", "maximum"):
        if key in markers:
            schema[key] = _parse_default("number", markers[key])
    for key in ("minLength", "maxLength", "minItems", "maxItems"):
        if key in markers:
            schema[key] = int(_parse_default("integer", markers[key]))
    if "pattern" in markers:
        try:
            re.compile(markers["pattern"])
        except re.error as exc:
            raise SimpleSchemaError(f"pattern does not compile: {exc}") from exc
        if not risky_pattern(markers["pattern"]):
            schema["pattern"] = markers["pattern"]
    if "uniqueItems" in markers and parse_bool(markers["uniqueItems"], "uniqueItems"):
        schema["uniqueItems"] = True
    if "default" in markers:
        schema["default"] = _parse_default(str(kind), markers["default"])
    if "description" in markers:
        schema["description"] = markers["description"]
    for key in ("immutable",):
        if key in markers:
            parse_bool(markers[key], key)
    if "validation" in markers and not markers["validation"].strip():
        raise SimpleSchemaError("validation marker is empty")
    return schema, "required" in markers and parse_bool(markers["required"], "required")


def compile_fields(
    fields: Any, types: Mapping[str, Any], seen: tuple[str, ...] = (), depth: int = 0
) -> dict[str, Any]:
    """Compile a SimpleSchema mapping (``spec`` or a custom type) into an object JSON Schema."""
    if isinstance(fields, str):
        return leaf_schema(fields, types, seen, depth)[0]
    if not isinstance(fields, Mapping):
        raise SimpleSchemaError("a schema must be a mapping of field names to types")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, value in fields.items():
        if isinstance(value, Mapping):
            properties[str(name)] = compile_fields(value, types, seen, depth + 1)
        elif isinstance(value, str):
            try:
                properties[str(name)], is_required = leaf_schema(value, types, seen, depth)
            except SimpleSchemaError as exc:
                raise SimpleSchemaError(f"{name}: {exc}") from exc
            if is_required:
                required.append(str(name))
        else:
            raise SimpleSchemaError(
                f"{name}: expected a type string or a mapping, got {type(value).__name__}"
            )
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def field_paths(fields: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Return every field path declared in a SimpleSchema mapping (for ``schema.spec.*`` references)."""
    out: set[tuple[str, ...]] = set()
    if isinstance(fields, Mapping):
        for name, value in fields.items():
            path = (*prefix, str(name))
            out.add(path)
            out |= field_paths(value, path)
    return out
