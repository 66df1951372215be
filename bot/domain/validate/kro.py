"""kro ResourceGraphDefinitions: ids, ``${...}`` references, cycles, readyWhen/includeWhen, schema.

The rules follow shared/notes/kro-resource-graphs.md (a summary of kubernetes-sigs/kro's
graph builder). CEL is not type-checked: references are found by scanning expressions for
root identifiers (outside string literals, not after a dot, not a function name, not a
macro variable such as ``c`` in ``filter(c, ...)``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from bot.domain.model import Finding, Severity
from bot.domain.validate.base import Doc, as_dict, as_list
from bot.domain.validate.simpleschema import SimpleSchemaError, compile_fields, field_paths

ID_PATTERN = re.compile(r"^[a-z][a-zA-Z0-9]*$")
KIND_PATTERN = re.compile(r"^[A-Z][a-zA-Z0-9]*$")
RESERVED = frozenset(
    [
        "apiVersion",
        "context",
        "dependency",
        "dependencies",
        "each",
        "externalRef",
        "externalReference",
        "externalRefs",
        "externalReferences",
        "graph",
        "instance",
        "item",
        "items",
        "kind",
        "kro",
        "metadata",
        "namespace",
        "object",
        "resource",
        "resourcegraphdefinition",
        "resourceGraphDefinition",
        "resources",
        "root",
        "runtime",
        "schema",
        "self",
        "serviceAccountName",
        "spec",
        "status",
        "this",
        "variables",
        "vars",
        "version",
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "return",
        "var",
        "void",
        "while",
    ]
)
CEL_WORDS = frozenset(
    {
        "true",
        "false",
        "null",
        "in",
        "has",
        "size",
        "int",
        "uint",
        "double",
        "string",
        "bool",
        "bytes",
        "dyn",
        "type",
    }
)
#: CEL libraries kro registers (kro pkg/cel/environment.go BaseDeclarations: cel-go ext Lists,
#: Strings, Bindings, Encoders, optional types; Kubernetes' Lists, URLs, Regex, Quantity, IP,
#: CIDR, Semver; kro's hash, json, lists, maps, random, omit and runtime libraries), called as
#: ``hash.sha256(...)``, ``cel.bind(...)``: namespaces, not resource ids. ``runtime`` is the
#: variable of kro's status-condition library.
CEL_NAMESPACES = frozenset(
    {
        "lists",
        "strings",
        "math",
        "sets",
        "base64",
        "optional",
        "encoders",
        "json",
        "random",
        "hash",
        "cel",
        "runtime",
    }
)
MACROS = (
    "map",
    "filter",
    "all",
    "exists",
    "exists_one",
    "transformList",
    "transformMap",
    "transformMapEntry",
    "sortBy",
)
HINT_DOCS = "See kro's graph rules (kro.run docs: ResourceGraphDefinition, CEL expressions)."


def _camel(name: str) -> str:
    parts = [p for p in re.split(r"[^a-zA-Z0-9]+", name) if p]
    text = "".join(p[:1].upper() + p[1:] for p in parts) or "myResource"
    text = text[:1].lower() + text[1:]
    return text if text[:1].isalpha() else "r" + text


def graph_kinds() -> frozenset[tuple[str, str]]:
    """Return the (group, kind) pairs treated as kro graphs (the current and the legacy names)."""
    return frozenset(
        {("kro.run", "ResourceGraphDefinition"), ("kro.run", "ResourceGroup"), ("kro.io", "ResourceGroup")}
    )


def expressions(value: str) -> tuple[list[str], str]:
    """Return the ``${...}`` expressions in ``value`` and an error text ("" when well formed)."""
    out: list[str] = []
    i = 0
    while True:
        start = value.find("${", i)
        if start < 0:
            return out, ""
        depth = 0
        quote = ""
        j = start + 2
        while j < len(value):
            ch = value[j]
            if quote:
                if ch == "\\":
                    j += 1
                elif ch == quote:
                    quote = ""
            elif ch in ("'", '"'):
                quote = ch
            elif ch == "{":
                depth += 1
            elif ch == "}":
                if depth == 0:
                    break
                depth -= 1
            elif value.startswith("${", j):
                return out, "nested ${ inside an expression"
            j += 1
        if j >= len(value):
            return out, "`${` without a closing `}`"
        out.append(value[start + 2 : j])
        i = j + 1


_STRING_LIT = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_IDENT = re.compile(r"(?<![\w.])(?<!\.\?)([A-Za-z_]\w*)(\s*\()?")
_BIND_VAR = re.compile(r"\bcel\.bind\(\s*([A-Za-z_]\w*)\s*,")
_MACRO_VAR = re.compile(r"\.(?:" + "|".join(MACROS) + r")\(\s*([A-Za-z_]\w*)\s*,(?:\s*([A-Za-z_]\w*)\s*,)?")


def root_identifiers(expr: str) -> list[tuple[str, str]]:
    """Return ``(identifier, dotted path after it)`` for each free root identifier in a CEL expression."""
    text = _STRING_LIT.sub('""', expr)
    bound = {name for m in _MACRO_VAR.finditer(text) for name in m.groups() if name}
    bound |= {m.group(1) for m in _BIND_VAR.finditer(text)}
    out: list[tuple[str, str]] = []
    for m in _IDENT.finditer(text):
        name = m.group(1)
        if m.group(2) or name in CEL_WORDS or name in bound or name in CEL_NAMESPACES:
            continue
        rest = re.match(r"((?:\??\.\??[A-Za-z_]\w*)*)", text[m.end(1) :])
        out.append((name, (rest.group(1) if rest else "").replace("?", "")))
    return out


def _strings(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def find_cycle(order: list[str], edges: dict[str, set[str]]) -> list[str] | None:
    """Return one dependency cycle as ``[a, b, a]`` (``a`` depends on ``b`` ...), or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges.get(node, ()), key=order.index):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in order:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def topological_order(order: list[str], edges: dict[str, set[str]]) -> list[str]:
    """Return kro's order: Kahn's algorithm, earliest-declared ready resource first."""
    remaining = {n: set(edges.get(n, ())) & set(order) for n in order}
    out: list[str] = []
    while remaining:
        ready = [n for n in order if n in remaining and not remaining[n]]
        if not ready:
            break
        node = ready[0]
        out.append(node)
        del remaining[node]
        for deps in remaining.values():
            deps.discard(node)
    return out


def instance_schema(doc: Doc) -> tuple[dict[str, Any] | None, str]:
    """Return the JSON Schema of instances' ``spec`` declared by an RGD, and an error ("" if fine)."""
    schema = as_dict(as_dict(doc.data.get("spec")).get("schema"))
    types = schema.get("types") or {}
    try:
        return compile_fields(schema.get("spec") or {}, types if isinstance(types, dict) else {}), ""
    except SimpleSchemaError as exc:
        return None, str(exc)


def check_graph(doc: Doc) -> list[Finding]:
    """Return the findings of one kro graph document (RGD, or the legacy ResourceGroup)."""
    findings: list[Finding] = []
    err = Severity.ERROR

    def add(rule: str, path: tuple[str | int, ...], message: str, hint: str = HINT_DOCS) -> None:
        findings.append(doc.finding(rule, err, path, message, hint))

    spec = doc.data.get("spec")
    if not isinstance(spec, dict):
        add("kro.schema", ("spec",), "the graph has no spec", "Add spec.schema and spec.resources.")
        return findings
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        add(
            "kro.schema",
            ("spec",),
            "spec.schema is missing",
            "Declare the instance API: apiVersion, kind, spec.",
        )
        schema = {}
    kind = str(schema.get("kind") or "")
    if schema and not KIND_PATTERN.match(kind):
        add(
            "kro.schema",
            ("spec", "schema", "kind"),
            f"schema.kind {kind!r} is not UpperCamelCase",
            "Use e.g. EksCluster.",
        )
    _, schema_error = instance_schema(doc)
    if schema_error:
        add(
            "kro.schema",
            ("spec", "schema", "spec"),
            f"invalid simple schema: {schema_error}",
            "Write leaves as `type | marker=value`, e.g. `integer | default=3 minimum=1`.",
        )
    spec_fields = field_paths(schema.get("spec") or {})
    for path, value in _strings(schema.get("status") or {}, ("spec", "schema", "status")):
        exprs, _ = expressions(value)
        if not exprs:
            add(
                "kro.schema",
                path,
                f"status field {'.'.join(map(str, path[3:]))} has no ${{...}} expression",
                "Status fields must be CEL expressions such as ${cluster.status.arn}.",
            )

    resources = spec.get("resources")
    if not isinstance(resources, list):
        add(
            "kro.resources",
            ("spec",),
            "spec.resources is missing or not a list",
            "List the resources with an id each.",
        )
        return findings
    ids: list[str] = []
    seen: dict[str, int] = {}
    iterators: dict[int, set[str]] = {}
    for i, res in enumerate(resources):
        if not isinstance(res, dict):
            add("kro.resources", ("spec", "resources", i), "a resource must be a mapping")
            continue
        rid = res.get("id")
        where: tuple[str | int, ...] = ("spec", "resources", i, "id")
        if not isinstance(rid, str) or not rid:
            add(
                "kro.id",
                ("spec", "resources", i),
                "resource has no id",
                "Give every resource a lowerCamelCase id.",
            )
            continue
        if not ID_PATTERN.match(rid):
            add(
                "kro.id",
                where,
                f"resource id {rid!r} is not lowerCamelCase",
                f"Rename it, e.g. {_camel(rid)!r}: ids match ^[a-z][a-zA-Z0-9]*$.",
            )
        elif rid in RESERVED:
            add(
                "kro.id",
                where,
                f"resource id {rid!r} is a reserved word",
                "Choose another id, e.g. add a suffix.",
            )
        if rid in seen:
            add(
                "kro.id",
                where,
                f"duplicate resource id {rid!r} (first at resource {seen[rid] + 1})",
                "Ids must be unique.",
            )
        seen.setdefault(rid, i)
        ids.append(rid)
        has_t, has_e = "template" in res, "externalRef" in res
        if has_t == has_e:
            wrapped = resource_object_path(res)
            add(
                "kro.resources",
                ("spec", "resources", i),
                f"resource {rid!r} needs exactly one of template and externalRef",
                (
                    "Put the object under template: (kro reads nothing else; copied examples often "
                    f"leave it out{' or use ' + repr(wrapped[0]) if wrapped else ''})."
                    if wrapped is not None and not has_e
                    else "Use template to create an object, externalRef to read an existing one."
                ),
            )
        template = res.get("template")
        if isinstance(template, dict):
            missing = [k for k in ("apiVersion", "kind", "metadata") if k not in template]
            if missing:
                add(
                    "kro.resources",
                    ("spec", "resources", i, "template"),
                    f"template of {rid!r} lacks {', '.join(missing)}",
                    "A template is a full Kubernetes object.",
                )
        names = set()
        for entry in as_list(res.get("forEach")):
            if isinstance(entry, dict) and len(entry) == 1:
                names.add(str(next(iter(entry))))
            else:
                add(
                    "kro.foreach",
                    ("spec", "resources", i, "forEach"),
                    "each forEach entry must have exactly one key",
                )
        iterators[i] = names

    for i, names in iterators.items():
        where_fe: tuple[str | int, ...] = ("spec", "resources", i, "forEach")
        for name in sorted(names):
            if not ID_PATTERN.match(name) or name in RESERVED:
                add(
                    "kro.foreach",
                    where_fe,
                    f"forEach iterator {name!r} is not a valid, unreserved lowerCamelCase name",
                    "Name iterators like ids, e.g. `subnet` or `zone`.",
                )
            elif name in seen:
                add(
                    "kro.foreach",
                    where_fe,
                    f"forEach iterator {name!r} has the same name as a resource id",
                    "Rename the iterator so expressions are not ambiguous.",
                )
    known = set(ids)
    edges: dict[str, set[str]] = {rid: set() for rid in ids}
    for i, res in enumerate(resources):
        if not isinstance(res, dict) or not isinstance(res.get("id"), str):
            continue
        rid = res["id"]
        local = iterators.get(i, set())
        for section in ("template", "externalRef", "includeWhen", "forEach", "readyWhen"):
            for path, value in _strings(res.get(section), ("spec", "resources", i, section)):
                exprs, problem = expressions(value)
                if problem:
                    add("kro.expression", path, f"{problem} in {value!r}", "Close every ${ with }.")
                    continue
                standalone = (
                    value.strip().startswith("${") and value.strip().endswith("}") and len(exprs) == 1
                )
                if section in ("includeWhen", "readyWhen", "forEach") and exprs and not standalone:
                    add(
                        "kro.expression",
                        path,
                        f"{section} entries must be one standalone ${{...}} expression",
                        "Write the whole condition inside one ${...}; use |- or >- for YAML blocks.",
                    )
                if section in ("includeWhen", "readyWhen") and not exprs:
                    add(
                        "kro.expression",
                        path,
                        f"{section} entry {value!r} is not a ${{...}} expression",
                        "Write a boolean CEL expression such as ${schema.spec.enabled}.",
                    )
                for expr in exprs:
                    for ident, rest in root_identifiers(expr):
                        if ident == "schema":
                            parts = tuple(p for p in rest.split(".") if p)
                            if (
                                parts[:1] == ("spec",)
                                and len(parts) > 1
                                and spec_fields
                                and parts[1:2] not in {p[:1] for p in spec_fields}
                            ):
                                add(
                                    "kro.reference",
                                    path,
                                    f"schema.{'.'.join(parts)} is not a field of schema.spec",
                                    f"Declared fields: {', '.join(sorted({p[0] for p in spec_fields}))}.",
                                )
                            if section == "readyWhen":
                                add(
                                    "kro.readywhen",
                                    path,
                                    f"readyWhen of {rid!r} references schema",
                                    "readyWhen may reference only the resource itself, e.g. ${"
                                    + rid
                                    + ".status.ready}.",
                                )
                            continue
                        if ident in local or ident == "each":
                            continue
                        if ident not in known:
                            add(
                                "kro.reference",
                                path,
                                f"expression ${{{expr}}} references unknown identifier {ident!r}",
                                f"Known resource ids: {', '.join(ids) or '(none)'}; the instance is "
                                "`schema`.",
                            )
                            continue
                        if section == "readyWhen":
                            if ident != rid:
                                add(
                                    "kro.readywhen",
                                    path,
                                    f"readyWhen of {rid!r} references {ident!r}",
                                    "readyWhen may reference only the resource itself.",
                                )
                            continue
                        if ident == rid:
                            add(
                                "kro.cycle",
                                path,
                                f"resource {rid!r} references itself",
                                "A resource cannot depend on itself.",
                            )
                            continue
                        edges[rid].add(ident)
    cycle = find_cycle(ids, edges)
    if cycle:
        first = seen.get(cycle[0], 0)
        add(
            "kro.cycle",
            ("spec", "resources", first, "id"),
            "graph contains a cycle: " + " -> ".join(cycle),
            "Break the cycle: one of these resources must not read the other's fields.",
        )
    return findings


def resource_object_path(res: dict[str, Any]) -> tuple[str, ...] | None:
    """Return where the object of one kro resource is, relative to the resource, or ``None``.

    That is ``template``; for a resource written without it (as copied from write-ups), the
    resource itself when it carries ``apiVersion`` and ``kind``, or the one mapping field that
    does (``definition:`` and the like). ``externalRef`` objects are read, not created.
    """
    if "template" in res:
        return ("template",) if isinstance(res["template"], dict) else None
    if "externalRef" in res:
        return None
    if res.get("apiVersion") and res.get("kind"):
        return ()
    inner = [k for k, v in res.items() if isinstance(v, dict) and v.get("apiVersion") and v.get("kind")]
    return (str(inner[0]),) if len(inner) == 1 else None


def resource_objects(doc: Doc) -> list[Doc]:
    """Return the objects a kro graph's resources create, each as a document at its own lines."""
    out: list[Doc] = []
    for i, res in enumerate(as_list(as_dict(doc.data.get("spec")).get("resources"))):
        where = resource_object_path(res) if isinstance(res, dict) else None
        sub = doc.sub(("spec", "resources", i, *where)) if where is not None else None
        if sub is not None:
            if where == ():
                sub = Doc(sub.path, sub.index, sub.line, sub.node, _without_kro_fields(sub.data), sub.prefix)
            out.append(sub)
    return out


_KRO_RESOURCE_FIELDS = ("id", "readyWhen", "includeWhen", "forEach", "externalRef", "template")


def _without_kro_fields(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in _KRO_RESOURCE_FIELDS}


def is_graph_doc(doc: Doc) -> bool:
    """Return whether ``doc`` is a kro graph (its templates are not objects to admit)."""
    group = doc.api_version.split("/", 1)[0] if "/" in doc.api_version else ""
    return (group, doc.kind) in graph_kinds()
