"""Load GitHub's REST description and the webhook schemas; validate bodies and shape responses.

The OpenAPI subset (OpenAPI 3.0) is converted once to plain JSON Schema: ``nullable: true`` becomes a
``null`` alternative. :func:`conform` takes an object built from the simulator's real state and
makes it match a schema: keys the schema forbids are dropped and required keys the simulator has
no value for get a neutral value of the right type (``null`` when allowed, ``""``, ``0``, ``[]``).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema

DATA = Path(str(resources.files("bot.sim") / "data"))
OPENAPI_PATH = DATA / "rest-subset.openapi.json"
ISSUES_FRAGMENT = DATA / "issues.openapi.json"
"""The plain-issue operations, written for this project from GitHub's REST docs (not in the subset)."""
WEBHOOK_SCHEMAS = DATA / "webhook-schemas"
LOCAL_WEBHOOK_SCHEMAS = DATA / "webhook-schemas-local"
"""Schemas of the ``issues`` event, written for this project in the octokit/webhooks shape."""
METHODS = ("get", "post", "put", "patch", "delete")


def convert_nullable(node: Any) -> Any:
    """Return a copy of an OpenAPI 3.0 schema tree with ``nullable`` turned into JSON Schema."""
    if isinstance(node, list):
        return [convert_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: convert_nullable(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if "type" in out:
            t = out["type"]
            out["type"] = [*t, "null"] if isinstance(t, list) else [t, "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@dataclass(frozen=True)
class Operation:
    """One REST operation of the subset: method, path template and its compiled matcher."""

    method: str
    template: str
    operation_id: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Return the path parameters when ``method path`` is this operation, else None."""
        if method.upper() != self.method:
            return None
        m = self.pattern.fullmatch(path)
        return m.groupdict() if m else None


def _merge_fragment(doc: dict[str, Any], fragment: dict[str, Any]) -> None:
    """Add a fragment's paths and components to ``doc``; a name both define is an error."""
    for template, item in fragment.get("paths", {}).items():
        target = doc["paths"].setdefault(template, {})
        clash = set(target) & set(item)
        if clash:
            raise ValueError(f"fragment redefines {sorted(clash)} of {template}")
        target.update(item)
    for kind, entries in fragment.get("components", {}).items():
        target = doc.setdefault("components", {}).setdefault(kind, {})
        clash = set(target) & set(entries)
        if clash:
            raise ValueError(f"fragment redefines components/{kind} {sorted(clash)}")
        target.update(entries)


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    rx = ""
    for part in parts:
        if part.startswith("{"):
            name = part[1:-1]
            # a ref or a file path may contain slashes; everything else is one segment
            greedy = name in {"ref", "path", "basehead"}
            rx += f"(?P<{name}>{'.+' if greedy else '[^/]+'})"
        else:
            rx += re.escape(part)
    return re.compile(rx)


class OpenAPI:
    """GitHub's REST subset as JSON Schema, with operation lookup and validators."""

    def __init__(self, path: Path = OPENAPI_PATH, fragments: tuple[Path, ...] = (ISSUES_FRAGMENT,)) -> None:
        raw = json.loads(path.read_text(encoding="utf-8"))
        for fragment in fragments:
            _merge_fragment(raw, json.loads(fragment.read_text(encoding="utf-8")))
        self.doc: dict[str, Any] = convert_nullable(raw)
        resource = referencing.Resource.from_contents(
            self.doc, default_specification=referencing.jsonschema.DRAFT202012
        )
        self.registry: referencing.Registry[Any] = referencing.Registry().with_resource("openapi", resource)
        self.operations: list[Operation] = []
        for template, item in self.doc["paths"].items():
            for method, spec in item.items():
                if method in METHODS:
                    op = Operation(method.upper(), template, spec["operationId"], _compile(template), spec)
                    self.operations.append(op)
        # literal segments first, so /git/ref/{ref} never shadows a more specific route
        self.operations.sort(key=lambda o: (-len(o.template.replace("{", "").split("/")), o.template))

    def find(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """Return the operation serving ``method path`` and its parameters."""
        for op in self.operations:
            params = op.match(method, path)
            if params is not None:
                return op, params
        return None

    def by_id(self, operation_id: str) -> Operation:
        """Return the operation with this operationId."""
        for op in self.operations:
            if op.operation_id == operation_id:
                return op
        raise KeyError(operation_id)

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow ``$ref`` chains inside the document."""
        while "$ref" in schema:
            ref = schema["$ref"]
            node: Any = self.doc
            for part in ref.lstrip("#/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            schema = node
        return schema

    def request_schema(self, op: Operation) -> dict[str, Any] | None:
        """The JSON request-body schema of ``op``, if it has one."""
        body = op.spec.get("requestBody")
        if not body:
            return None
        body = self.resolve(body)
        content = body.get("content", {}).get("application/json")
        return content.get("schema") if content else None

    def response_schema(self, op: Operation, status: int) -> dict[str, Any] | None:
        """The JSON schema of the ``status`` response of ``op``, if documented."""
        resp = op.spec.get("responses", {}).get(str(status))
        if not resp:
            return None
        resp = self.resolve(resp)
        content = resp.get("content", {}).get("application/json")
        return content.get("schema") if content else None

    def validator(self, schema: dict[str, Any]) -> jsonschema.protocols.Validator:
        """A draft 2020-12 validator whose ``$ref``s resolve in the document."""
        wrapped = {"$id": "urn:sim:schema", **schema} if "$ref" not in schema else schema
        if "$ref" in wrapped:
            wrapped = {"allOf": [wrapped]}
        wrapped = _rebase_refs(wrapped)
        return jsonschema.Draft202012Validator(wrapped, registry=self.registry)

    def errors(self, schema: dict[str, Any], instance: Any) -> list[str]:
        """Human-readable validation errors of ``instance`` against ``schema`` (empty when valid)."""
        out = []
        for err in sorted(self.validator(schema).iter_errors(instance), key=lambda e: list(e.path)):
            where = "/".join(str(p) for p in err.path)
            out.append(f"{err.message}" + (f" (at {where})" if where else ""))
        return out

    def request_errors(self, schema: dict[str, Any], body: Any) -> list[str]:
        """Errors of a request body in GitHub's wording (``"name" wasn't supplied.``)."""
        out = []
        for err in sorted(self.validator(schema).iter_errors(body), key=lambda e: list(e.path)):
            where = "/".join(str(p) for p in err.path)
            if err.validator == "required" and isinstance(err.instance, dict):
                names: list[str] = err.validator_value if isinstance(err.validator_value, list) else []
                for name in names:
                    if name not in err.instance:
                        prefix = f"For 'properties/{where}', " if where else ""
                        out.append(f'{prefix}"{name}" wasn\'t supplied.')
                continue
            shown = json.dumps(err.instance)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            detail = (
                err.message.replace(repr(err.instance), "").strip() if len(err.message) > 200 else err.message
            )
            if err.validator in ("maxItems", "maxLength"):
                detail = f"{err.validator} is {err.validator_value}"
                out.append(f"For 'properties/{where}', {shown} is too long ({detail}).")
            else:
                out.append(f"For 'properties/{where or 'body'}', {detail[:200]}.")
        return out

    def conform(self, schema: dict[str, Any], value: Any) -> Any:
        """Shape ``value`` to ``schema`` (see the module docstring)."""
        return _conform(schema, value, self._resolve_any, 0)

    def _resolve_any(self, schema: dict[str, Any]) -> dict[str, Any]:
        return self.resolve(schema)


def _rebase_refs(node: Any) -> Any:
    if isinstance(node, list):
        return [_rebase_refs(n) for n in node]
    if isinstance(node, dict):
        out = {k: _rebase_refs(v) for k, v in node.items()}
        if isinstance(out.get("$ref"), str) and out["$ref"].startswith("#/components"):
            out["$ref"] = "openapi" + out["$ref"]
        return out
    return node


class WebhookSchemas:
    """The octokit/webhooks JSON Schemas (draft-07), one per event and action."""

    def __init__(
        self, root: Path = WEBHOOK_SCHEMAS, extra: tuple[Path, ...] = (LOCAL_WEBHOOK_SCHEMAS,)
    ) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}
        for path in [p for r in (root, *extra) for p in sorted(r.rglob("*.schema.json"))]:
            schema = json.loads(path.read_text(encoding="utf-8"))
            self.by_id[schema["$id"]] = schema
        self.registry: referencing.Registry[Any] = referencing.Registry().with_resources(
            (sid, referencing.Resource.from_contents(s, default_specification=referencing.jsonschema.DRAFT7))
            for sid, s in self.by_id.items()
        )

    def schema_for(self, event: str, action: str | None) -> dict[str, Any]:
        """The schema of ``event`` (and ``action``), e.g. ``pull_request$opened`` or ``push$event``."""
        key = f"{event}${action}" if action else f"{event}$event"
        return self.by_id[key]

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow ``$ref``s (all of which name a ``common/*.schema.json`` file)."""
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self.by_id[f"common/{name}"]
        return schema

    def conform(self, schema: dict[str, Any], value: Any) -> Any:
        """Shape ``value`` to ``schema``."""
        return _conform(schema, value, self.resolve, 0)

    def errors(self, event: str, action: str | None, payload: Any) -> list[str]:
        """Validation errors of a payload against its event schema."""
        v = jsonschema.Draft7Validator(self.schema_for(event, action), registry=self.registry)
        return [f"{e.message} at {'/'.join(map(str, e.path))}" for e in v.iter_errors(payload)]


def _types(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type")
    if t is None:
        return []
    return list(t) if isinstance(t, list) else [t]


def _allows_null(schema: dict[str, Any], resolve: Any) -> bool:
    schema = resolve(schema)
    if "allOf" in schema:
        return all(_allows_null(part, resolve) for part in schema["allOf"])
    if "null" in _types(schema):
        return True
    if schema.get("enum") is not None and None in schema["enum"]:
        return True
    return any(_allows_null(s, resolve) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def _merge_all_of(schema: dict[str, Any], resolve: Any) -> dict[str, Any]:
    schema = resolve(schema)
    if "allOf" not in schema:
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    props: dict[str, Any] = dict(merged.get("properties", {}))
    required: list[str] = list(merged.get("required", []))
    for part in schema["allOf"]:
        part = _merge_all_of(part, resolve)
        for name, sub in part.get("properties", {}).items():
            # the later, narrower definition wins (webhook schemas narrow ``state`` and such)
            props[name] = {"allOf": [props[name], sub]} if name in props else sub
        required += [r for r in part.get("required", []) if r not in required]
        if "type" in part and "enum" not in part:
            merged.pop("enum", None)
        for key in ("type", "enum", "const", "format", "items", "anyOf", "oneOf"):
            if key in part:
                merged[key] = part[key]
        if part.get("additionalProperties") is False:
            merged["additionalProperties"] = False
    merged["properties"] = props
    merged["required"] = required
    return merged


def _default(schema: dict[str, Any], resolve: Any, depth: int) -> Any:
    schema = _merge_all_of(schema, resolve)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for alt in schema.get("anyOf", []) + schema.get("oneOf", []):
        if _allows_null(alt, resolve):
            return None
    if _allows_null(schema, resolve):
        return None
    alts = schema.get("anyOf") or schema.get("oneOf")
    if alts:
        return _default(alts[0], resolve, depth + 1)
    types = _types(schema)
    t = types[0] if types else ("object" if "properties" in schema else "string")
    if t == "object":
        return _conform(schema, {}, resolve, depth + 1)
    if t == "array":
        return []
    if t == "boolean":
        return False
    if t in ("integer", "number"):
        return schema.get("minimum", 0)
    fmt = schema.get("format")
    if fmt == "date-time":
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if fmt in ("uri", "uri-template", "url"):
        return "http://localhost/"
    if fmt == "email":
        return "nobody@users.noreply.localhost"
    return ""


def _matches_type(value: Any, schema: dict[str, Any]) -> bool:
    types = _types(schema)
    if not types:
        return True
    py = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "null": type(None),
        "integer": int,
        "number": (int, float),
    }
    return any(isinstance(value, py[t]) for t in types if t in py)  # type: ignore[arg-type]


def _conform(schema: dict[str, Any], value: Any, resolve: Any, depth: int) -> Any:
    if depth > 40:
        return value
    schema = _merge_all_of(schema, resolve)
    disc = schema.get("discriminator")
    if disc and isinstance(value, dict):
        target = disc.get("mapping", {}).get(value.get(disc["propertyName"]))
        if target:
            return _conform({"$ref": target}, value, resolve, depth + 1)
    alts = schema.get("anyOf") or schema.get("oneOf")
    if alts:
        if value is None and any(_allows_null(a, resolve) for a in alts):
            return None
        for alt in alts:
            alt_r = _merge_all_of(alt, resolve)
            if _matches_type(value, alt_r) and not (
                isinstance(value, dict) and alt_r.get("type") not in (None, "object", ["object", "null"])
            ):
                return _conform(alt_r, value, resolve, depth + 1)
        return value
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out: dict[str, Any] = {}
        extra = schema.get("additionalProperties", True)
        for key, sub in value.items():
            if key in props and sub is None and not _allows_null(props[key], resolve):
                continue  # a required one gets a neutral value below; an optional one is left out
            if key in props:
                out[key] = _conform(props[key], sub, resolve, depth + 1)
            elif extra is False:
                continue
            elif isinstance(extra, dict):
                out[key] = _conform(extra, sub, resolve, depth + 1)
            else:
                out[key] = sub
        for key in schema.get("required", []):
            if key not in out:
                out[key] = _default(props.get(key, {}), resolve, depth + 1)
        return out
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [_conform(items, v, resolve, depth + 1) for v in value]
        return value
    return value


@cache
def openapi() -> OpenAPI:
    """The process-wide parsed REST description (parsing takes a moment)."""
    return OpenAPI()


@cache
def webhook_schemas() -> WebhookSchemas:
    """The process-wide webhook schemas."""
    return WebhookSchemas()


def deep_copy(value: Any) -> Any:
    """Return a deep copy of a JSON value."""
    return copy.deepcopy(value)
