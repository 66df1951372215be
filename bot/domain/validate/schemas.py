"""Schema rule: objects against their CRD's openAPIV3Schema or their RGD's simple schema.

CRDs come from the head tree (a repository may ship its own) and from the bundled
well-known CRDs (:mod:`bot.crds`). OpenAPI extensions are translated for jsonschema:
``nullable`` admits ``null``, ``x-kubernetes-int-or-string`` admits integer or string,
``x-kubernetes-preserve-unknown-fields`` keeps unknown fields, and elsewhere an object with
declared ``properties`` rejects unknown fields (as ``kubectl apply`` with strict field
validation does). Values holding kro ``${...}`` expressions are not type-checked.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from functools import cache, partial
from typing import Any

import jsonschema

from bot import crds
from bot.domain.model import Finding, Severity
from bot.domain.validate.base import Context, Doc, as_dict
from bot.domain.validate.kro import graph_kinds, instance_schema
from bot.domain.validate.simpleschema import risky_pattern

#: Groups served by Kubernetes itself (no CRD needed; not validated here).
BUILTIN_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "apiextensions.k8s.io",
        "admissionregistration.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "node.k8s.io",
        "discovery.k8s.io",
        "certificates.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "apiregistration.k8s.io",
        "kustomize.config.k8s.io",
        "resource.k8s.io",
        "gateway.networking.k8s.io",
    }
)
#: Groups whose kinds are defined by objects in the repository itself, not by CRD files.
DYNAMIC_GROUP_SUFFIXES = ("constraints.gatekeeper.sh", "test.gatekeeper.sh", "config.gatekeeper.sh")
MAX_ERRORS_PER_OBJECT = 20


def _openapi_to_jsonschema(node: Any) -> Any:
    if isinstance(node, list):
        return [_openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: _openapi_to_jsonschema(v) for k, v in value.items()}
        elif key in ("description", "example", "x-kubernetes-validations"):
            continue
        else:
            out[key] = _openapi_to_jsonschema(value)
    props = node.get("properties")
    if isinstance(props, dict) and isinstance(node.get("required"), list):
        # The API server applies defaults before it validates: a defaulted field is never missing.
        out["required"] = [
            r for r in node["required"] if not (isinstance(props.get(r), dict) and "default" in props[r])
        ]
        if not out["required"]:
            del out["required"]
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", True)
    elif "properties" in node and "additionalProperties" not in node:
        out["additionalProperties"] = False
    if isinstance(out.get("pattern"), str) and risky_pattern(out["pattern"]):
        del out["pattern"]  # never run a regex from the repository that could hang the bot
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _crd_versions(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = crd.get("spec") or {}
    out: dict[str, dict[str, Any]] = {}
    for v in spec.get("versions") or []:
        if not isinstance(v, dict) or not v.get("name"):
            continue
        schema = ((v.get("schema") or {}).get("openAPIV3Schema")) or spec.get("validation", {}).get(
            "openAPIV3Schema"
        )
        out[str(v["name"])] = {"served": v.get("served", True), "schema": schema}
    return out


@cache
def _bundled_crd(group: str, kind: str) -> dict[str, Any] | None:
    name = crds.bundled_index().get((group, kind))
    if name is None:
        return None
    for doc in crds.load_bundled(name):
        names = (doc.get("spec") or {}).get("names") or {}
        if (doc.get("spec") or {}).get("group") == group and names.get("kind") == kind:
            return doc
    return None


@cache
def _validator_for(key: tuple[str, str, str, int], schema_json: str) -> jsonschema.Draft7Validator:
    schema = _openapi_to_jsonschema(json.loads(schema_json))
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
        for top in ("apiVersion", "kind", "metadata"):
            schema["properties"].setdefault(top, {})
    return jsonschema.Draft7Validator(schema)


def _validator(
    source: str, group: str, kind: str, version: str, schema: dict[str, Any]
) -> jsonschema.Draft7Validator:
    text = json.dumps(schema, sort_keys=True)
    return _validator_for((source, f"{group}/{kind}", version, hash(text)), text)


def _has_expression(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def _errors(validator: jsonschema.Draft7Validator, instance: Any) -> list[jsonschema.ValidationError]:
    out = []
    for err in validator.iter_errors(instance):
        if _has_expression(err.instance):
            continue
        if err.validator in ("anyOf", "oneOf") and isinstance(err.instance, dict):
            continue
        out.append(err)
    return sorted(out, key=lambda e: [str(p) for p in e.absolute_path])


def _report(
    doc: Doc, errors: list[jsonschema.ValidationError], what: str, base: tuple[str | int, ...] = ()
) -> list[Finding]:
    findings = []
    for err in errors[:MAX_ERRORS_PER_OBJECT]:
        path = (*base, *err.absolute_path)
        where = ".".join(str(p) for p in path) or "(object)"
        message = err.message
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = err.schema.get("properties") or {} if isinstance(err.schema, dict) else {}
            extras = sorted(str(k) for k in err.instance if k not in known)
            if extras:
                path = (*path, extras[0])
                message = f"unknown field{'s' if len(extras) > 1 else ''} {', '.join(map(repr, extras))}"
                close = difflib.get_close_matches(extras[0], sorted(map(str, known)), n=1, cutoff=0.75)
                if close:
                    message += f" (did you mean {close[0]!r}?)"
        if err.validator == "additionalProperties":
            hint = f"Remove or rename the unknown field; see the {what} for the allowed fields."
        elif err.validator == "required":
            hint = "Add the missing field."
        elif err.validator == "enum":
            allowed = err.validator_value if isinstance(err.validator_value, list) else []
            hint = f"Use one of: {', '.join(map(str, allowed))}."
        else:
            hint = f"Fix the value to match the {what}."
        if len(message) > 300:
            message = message[:297] + "..."
        findings.append(doc.finding("schema", Severity.ERROR, path, f"{where}: {message}", hint))
    if len(errors) > MAX_ERRORS_PER_OBJECT:
        findings.append(
            doc.finding(
                "schema",
                Severity.ERROR,
                base,
                f"{len(errors) - MAX_ERRORS_PER_OBJECT} more schema errors",
                "Fix the errors above first.",
            )
        )
    return findings


def _known_kinds(ctx: Context) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = {}
    for group, kind in [*crds.bundled_index(), *ctx.head_crds, *ctx.rgds]:
        kinds.setdefault(group, set()).add(kind)
    return kinds


def check_object(ctx: Context, doc: Doc) -> list[Finding]:
    """Validate one object (top-level or a kro template) against the schema for its kind."""
    if not isinstance(doc.data, dict) or not doc.api_version or not doc.kind:
        return []
    group, version, kind = doc.group, doc.version, doc.kind
    if _has_expression(doc.api_version) or _has_expression(kind):
        return []
    kro_hint = unknown_api_hint(group, version, kind)
    if kro_hint:
        return [doc.finding("schema.unknown-kind", Severity.ERROR, ("apiVersion",), *kro_hint)]
    if group in BUILTIN_GROUPS or group.endswith(DYNAMIC_GROUP_SUFFIXES):
        return []
    rgd = ctx.rgds.get((group, kind))
    if rgd is not None:
        others = ctx.other_rgds.get((group, kind), [])
        return _first_or_none([partial(_check_rgd, doc, r) for r in (rgd, *others)])
    crd = ctx.head_crds.get((group, kind))
    bundled = _bundled_crd(group, kind)
    defs = [d for d in (crd, *ctx.other_crds.get((group, kind), []), bundled) if d is not None]
    if not defs:
        return [_unknown_kind(ctx, doc)]
    return _first_or_none([partial(_check_crd, doc, d, d is bundled) for d in defs])


def _first_or_none(checks: list[Callable[[], list[Finding]]]) -> list[Finding]:
    """Return no finding when any definition accepts the object, else the first one's findings.

    The repository's own definition comes first, then other copies in the repository, then
    the bundled CRD: an object is wrong only when no definition the bot knows accepts it.
    """
    first: list[Finding] | None = None
    for check in checks:
        found = check()
        if not found:
            return []
        if first is None:
            first = found
    return first or []


def _check_rgd(doc: Doc, rgd: Doc) -> list[Finding]:
    group, version, kind = doc.group, doc.version, doc.kind
    expected = str(as_dict(as_dict(rgd.data.get("spec")).get("schema")).get("apiVersion") or "v1alpha1")
    if version != expected:
        return [
            doc.finding(
                "schema.version",
                Severity.ERROR,
                ("apiVersion",),
                f"{kind} is served as {group}/{expected}, not {doc.api_version}",
                f"Use apiVersion: {group}/{expected} (from ResourceGraphDefinition {rgd.name!r}).",
            )
        ]
    schema, problem = instance_schema(rgd)
    if schema is None:
        return [
            doc.finding(
                "schema",
                Severity.ERROR,
                ("kind",),
                f"cannot validate {kind}: its ResourceGraphDefinition has an invalid schema ({problem})",
                f"Fix ResourceGraphDefinition {rgd.name!r} in {rgd.path}.",
            )
        ]
    validator = _validator("rgd", group, kind, version, schema)
    return _report(doc, _errors(validator, doc.data.get("spec") or {}), f"schema in {rgd.path}", ("spec",))


def _check_crd(doc: Doc, crd: dict[str, Any], bundled: bool = False) -> list[Finding]:
    group, version, kind = doc.group, doc.version, doc.kind
    versions = _crd_versions(crd)
    entry = versions.get(version)
    if entry is None or not entry["served"]:
        served = ", ".join(f"{group}/{v}" for v, e in versions.items() if e["served"])
        if bundled:
            # The bundled CRD is the newest release's: an older controller may still serve it.
            return [
                doc.finding(
                    "schema.version",
                    Severity.WARNING,
                    ("apiVersion",),
                    f"{group}/{version} {kind} is no longer served by the current release of its "
                    "controller; not validated",
                    f"Move to {served} before upgrading the controller, or commit the CRD your "
                    "cluster runs to the repository so the bot validates against it.",
                )
            ]
        return [
            doc.finding(
                "schema.version",
                Severity.ERROR,
                ("apiVersion",),
                f"{group}/{version} {kind} is not served by its CRD",
                f"Use one of: {served}.",
            )
        ]
    if not isinstance(entry["schema"], dict):
        return []
    validator = _validator("crd", group, kind, version, entry["schema"])
    data = {k: v for k, v in doc.data.items() if k != "status"}
    return _report(doc, _errors(validator, data), f"{kind} CRD schema")


def close_kind(kind: str, known: set[str], group: str = "") -> str | None:
    """Return the known kind that ``kind`` is surely a slip for, else ``None``.

    Sure means: the same letters in another case, the kind with the group's service name in
    front (``EKSCluster`` in ``eks.services.k8s.aws`` for ``Cluster``), or a near-identical
    spelling. Anything less certain gets no suggestion: a wrong "did you mean" misleads.
    """
    service = group.split(".", 1)[0].lower()
    for candidate in sorted(known):
        if candidate.lower() in (kind.lower(), kind.lower().removeprefix(service)):
            return candidate
    close = difflib.get_close_matches(kind, sorted(known), n=1, cutoff=0.85)
    return close[0] if close else None


def _unknown_kind(ctx: Context, doc: Doc) -> Finding:
    """A notice for a kind no CRD defines (never an error: the bundled CRD sets may be older)."""
    group, kind = doc.group, doc.kind
    if group == "kro.run":
        return doc.finding(
            "schema.unknown-kind",
            Severity.NOTICE,
            ("kind",),
            f"no ResourceGraphDefinition in the repository defines kind {kind!r}; not validated",
            "Commit the ResourceGraphDefinition that defines it (kro must have it active before this "
            "object can be created), or fix the kind.",
        )
    crd_hint = (
        f"To validate it, commit the CustomResourceDefinition of {kind} ({group}) to the repository, "
        "for example from the operator's release or its Helm chart's crds/ folder."
    )
    known = _known_kinds(ctx).get(group)
    if known:
        close = close_kind(kind, known, group)
        return doc.finding(
            "schema.unknown-kind",
            Severity.NOTICE,
            ("kind",),
            f"kind {kind!r} is not in the {group} CRDs the bot knows; not validated",
            (f"Did you mean {close!r}? " if close else "") + crd_hint,
        )
    return doc.finding(
        "schema.unknown-kind",
        Severity.NOTICE,
        ("apiVersion",),
        f"unknown API {doc.api_version} {kind}: no CRD in the repository or bundled; not validated",
        "Check the apiVersion for typos. " + crd_hint,
    )


def unknown_api_hint(group: str, version: str, kind: str) -> tuple[str, str] | None:
    """Return (message, hint) for well-known wrong APIs such as ``kro.io/v1alpha1 ResourceGroup``."""
    if group == "kro.io" or group.endswith(".kro.io"):
        new_kind = "ResourceGraphDefinition" if kind == "ResourceGroup" else kind
        return (
            f"{group}/{version} {kind} is not a kro API: kro's API group has always been kro.run",
            f"Use apiVersion: kro.run/v1alpha1 and kind: {new_kind}"
            + (
                " (ResourceGroup was renamed ResourceGraphDefinition in kro v0.2, and is cluster-scoped)."
                if kind == "ResourceGroup"
                else "."
            ),
        )
    if group == "kro.run" and kind == "ResourceGroup":
        return (
            "kro.run ResourceGroup is the pre-v0.2 name of kro's API and is no longer served",
            "Use kind: ResourceGraphDefinition (renamed in kro v0.2; cluster-scoped, so drop "
            "metadata.namespace).",
        )
    return None


def is_graph(doc: Doc) -> bool:
    """Return whether ``doc`` is a kro graph (RGD or a legacy/miswritten ResourceGroup)."""
    return (doc.group, doc.kind) in graph_kinds()
