"""Cluster requests and the fleet rules: names, regions, instance types, bounds, tags, production, EKS.

What a cluster request is comes from the ``cluster_requests`` config section: path globs
and kinds, each kind with field mappings (dotted paths) for where name, region, version,
instance types, scaling, tags and subnets live. Built-in mappings cover Crossplane
``eks.aws.crossplane.io`` Cluster/NodeGroup and ACK ``eks.services.k8s.aws``
Cluster/Nodegroup; instances of kro-defined kinds are configured by the repository. Objects
embedded as kro resource templates are requests too; values that are ``${...}``
expressions are unknown until kro runs, so rules skip them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.domain.governance.globs import any_match
from bot.domain.model import Finding, Severity
from bot.domain.validate.base import Context, Doc, as_dict
from bot.domain.validate.eks import EksCatalog, format_minor, parse_minor
from bot.domain.validate.kro import resource_objects

DEFAULT_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$"
DEFAULT_PRODUCTION = {"environments": ["prod", "production"], "min_subnets": 3, "min_zones": 3}

BUILTIN_KINDS: tuple[dict[str, Any], ...] = (
    {
        "apiVersion": "eks.aws.crossplane.io/*",
        "kind": "Cluster",
        "role": "cluster",
        "fields": {
            "name": "metadata.name",
            "region": "spec.forProvider.region",
            "version": "spec.forProvider.version",
            "tags": "spec.forProvider.tags",
            "subnets": "spec.forProvider.resourcesVpcConfig.subnetIds",
            "role_arn": "spec.forProvider.roleArn",
        },
    },
    {
        "apiVersion": "eks.aws.crossplane.io/*",
        "kind": "NodeGroup",
        "role": "nodegroup",
        "fields": {
            "name": "metadata.name",
            "cluster_name": "spec.forProvider.clusterName",
            "region": "spec.forProvider.region",
            "version": "spec.forProvider.version",
            "instance_types": "spec.forProvider.instanceTypes",
            "min_size": "spec.forProvider.scalingConfig.minSize",
            "max_size": "spec.forProvider.scalingConfig.maxSize",
            "desired_size": "spec.forProvider.scalingConfig.desiredSize",
            "tags": "spec.forProvider.tags",
            "subnets": "spec.forProvider.subnets",
        },
    },
    {
        "apiVersion": "eks.services.k8s.aws/*",
        "kind": "Cluster",
        "role": "cluster",
        "fields": {
            "name": "spec.name",
            "region": "metadata.annotations.services\\.k8s\\.aws/region",
            "version": "spec.version",
            "tags": "spec.tags",
            "subnets": "spec.resourcesVPCConfig.subnetIDs",
            "role_arn": "spec.roleARN",
        },
    },
    {
        "apiVersion": "eks.services.k8s.aws/*",
        "kind": "Nodegroup",
        "role": "nodegroup",
        "fields": {
            "name": "spec.name",
            "cluster_name": "spec.clusterName",
            "region": "metadata.annotations.services\\.k8s\\.aws/region",
            "version": "spec.version",
            "instance_types": "spec.instanceTypes",
            "min_size": "spec.scalingConfig.minSize",
            "max_size": "spec.scalingConfig.maxSize",
            "desired_size": "spec.scalingConfig.desiredSize",
            "tags": "spec.tags",
            "subnets": "spec.subnets",
        },
    },
)


def split_path(dotted: str) -> list[str]:
    """Split ``a.b\\.c.d`` into ``["a", "b.c", "d"]`` (a backslash escapes a dot in a key)."""
    parts = re.split(r"(?<!\\)\.", dotted)
    return [p.replace("\\.", ".") for p in parts if p]


def get_path(data: Any, parts: list[str]) -> Any:
    """Return the value at ``parts`` in nested dicts (``None`` when absent)."""
    for part in parts:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


_SUBSTITUTED = re.compile(r"\$\{|\{\{|(?<!\$)\$[A-Za-z_][A-Za-z0-9_]*")
"""A value substituted before it is applied: kro or Flux ``${...}``, envsubst ``$VAR``, Go ``{{ }}``."""


@dataclass(slots=True)
class ClusterRequest:
    """One cluster or node group asked for by one object, with the value and path of each field."""

    doc: Doc
    role: str
    values: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, list[str]] = field(default_factory=dict)
    environment: str | None = None

    def value(self, name: str) -> Any:
        """The field's value; None when it is filled in later (``${...}``, ``$VAR``, ``{{ }}``)."""
        v = self.values.get(name)
        return None if isinstance(v, str) and _SUBSTITUTED.search(v) else v

    def at(self, name: str) -> list[str | int]:
        return [*self.paths.get(name, [])]

    @property
    def name(self) -> str | None:
        v = self.value("name")
        return str(v) if v is not None else None

    def finding(self, rule: str, severity: Severity, field_name: str, message: str, hint: str) -> Finding:
        return self.doc.finding(rule, severity, self.at(field_name), f"{self.doc.kind}: {message}", hint)


def kind_mappings(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the configured kind mappings followed by the built-in ones (unless ``builtin: false``)."""
    section = config.get("cluster_requests") or {}
    kinds = [dict(k) for k in section.get("kinds") or []]
    if section.get("builtin", True):
        kinds.extend(BUILTIN_KINDS)
    return kinds


def request_of(doc: Doc, config: Mapping[str, Any]) -> ClusterRequest | None:
    """Return the cluster request that ``doc`` is, or ``None`` when its kind is not a request kind."""
    for mapping in kind_mappings(config):
        if mapping.get("kind") != doc.kind or not fnmatch.fnmatchcase(
            doc.api_version, str(mapping.get("apiVersion", "*"))
        ):
            continue
        req = ClusterRequest(doc=doc, role=str(mapping.get("role") or "cluster"))
        for name, dotted in (mapping.get("fields") or {}).items():
            parts = split_path(str(dotted))
            req.paths[str(name)] = parts
            req.values[str(name)] = get_path(doc.data, parts)
        req.environment = _environment(req, config)
        return req
    return None


def _tags(req: ClusterRequest) -> dict[str, str]:
    raw = req.value("tags")
    out: dict[str, str] = {}
    if isinstance(raw, dict):
        out.update({str(k): str(v) for k, v in raw.items()})
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, dict) and "key" in item:
                out[str(item["key"])] = str(item.get("value", ""))
    labels = as_dict(as_dict(req.doc.data.get("metadata")).get("labels"))
    if isinstance(labels, dict):
        for k, v in labels.items():
            out.setdefault(str(k), str(v))
    return out


def _environment(req: ClusterRequest, config: Mapping[str, Any]) -> str | None:
    envs = ((config.get("fleet") or {}).get("environments")) or {}
    explicit = req.value("environment") or _tags(req).get("environment")
    if explicit:
        return str(explicit)
    for part in req.doc.path.split("/")[:-1]:
        if part in envs:
            return part
    default = (config.get("fleet") or {}).get("default_environment")
    return str(default) if default else None


def in_scope(path: str, config: Mapping[str, Any]) -> bool:
    """Return whether a file path may hold cluster requests (``cluster_requests.paths`` globs)."""
    patterns = (config.get("cluster_requests") or {}).get("paths") or ["**"]
    return any_match([str(p) for p in patterns], path)


def requests_in(docs: Iterable[Doc], config: Mapping[str, Any]) -> list[ClusterRequest]:
    """Return the requests among ``docs`` and the kro resource templates embedded in them."""
    out: list[ClusterRequest] = []
    for doc in docs:
        if not in_scope(doc.path, config):
            continue
        req = request_of(doc, config)
        if req is not None:
            out.append(req)
        if isinstance(doc.data, dict) and isinstance(as_dict(doc.data.get("spec")).get("schema"), dict):
            for sub in resource_objects(doc):
                inner = request_of(sub, config)
                if inner is not None:
                    out.append(inner)
    return out


def _number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def fleet_rules(
    ctx: Context, requests: list[ClusterRequest], fleet_names: dict[str, list[tuple[str, str]]]
) -> list[Finding]:
    """Return the fleet findings for the changed requests (``fleet_names``: name -> [(path, region)])."""
    cfg = ctx.section("fleet")
    findings: list[Finding] = []
    try:
        pattern = re.compile(str(cfg.get("name_pattern") or DEFAULT_NAME_PATTERN))
    except re.error as exc:
        findings.append(
            Finding(
                "config",
                Severity.ERROR,
                ".github/gitops-bot.yml",
                1,
                f"fleet.name_pattern is not a valid regular expression: {exc}",
                "Fix the pattern on the base branch; names are checked against the default until then.",
            )
        )
        pattern = re.compile(DEFAULT_NAME_PATTERN)
    regions = [str(r) for r in cfg.get("allowed_regions") or []]
    types = [str(t) for t in cfg.get("allowed_instance_types") or []]
    required = [str(t) for t in cfg.get("required_tags") or []]
    envs = cfg.get("environments") or {}
    production = {**DEFAULT_PRODUCTION, **(cfg.get("production") or {})}
    zones = {str(k): str(v) for k, v in (cfg.get("subnet_zones") or {}).items()}
    for req in requests:
        E, W = Severity.ERROR, Severity.WARNING
        name = req.name
        if name is not None and not pattern.match(name):
            findings.append(
                req.finding(
                    "fleet.name",
                    E,
                    "name",
                    f"name {name!r} does not match the fleet's pattern {pattern.pattern}",
                    "Use lowercase letters, digits and dashes as the fleet config requires.",
                )
            )
        if name is not None and req.role == "cluster":
            others = [p for p, region in fleet_names.get(name, []) if p != req.doc.path]
            if others:
                findings.append(
                    req.finding(
                        "fleet.unique",
                        E,
                        "name",
                        f"cluster name {name!r} is already used by {', '.join(sorted(others)[:3])}",
                        "Cluster names are unique across the fleet: pick another name.",
                    )
                )
        region = req.value("region")
        if region is not None and regions and str(region) not in regions:
            findings.append(
                req.finding(
                    "fleet.region",
                    E,
                    "region",
                    f"region {region!r} is not allowed",
                    f"Allowed regions: {', '.join(regions)}.",
                )
            )
        itypes = req.value("instance_types")
        if isinstance(itypes, str):
            itypes = [itypes]
        if isinstance(itypes, list) and types:
            for i, itype in enumerate(itypes):
                if (
                    isinstance(itype, str)
                    and "${" not in itype
                    and not any(fnmatch.fnmatchcase(itype, t) for t in types)
                ):
                    findings.append(
                        req.doc.finding(
                            "fleet.instance-type",
                            E,
                            [*req.at("instance_types"), i],
                            f"instance type {itype!r} is not allowed",
                            f"Allowed instance types: {', '.join(types)}.",
                        )
                    )
        findings.extend(_bounds(req, envs))
        raw_tags = req.values.get("tags")
        if required and not (isinstance(raw_tags, str) and "${" in raw_tags):  # an expression: unknown
            tags = _tags(req)
            missing = [t for t in required if not tags.get(t)]
            if missing:
                field_name = "tags" if req.paths.get("tags") else "name"
                findings.append(
                    req.finding(
                        "fleet.tags",
                        E,
                        field_name,
                        f"missing required tag(s): {', '.join(missing)}",
                        "Add them under tags (or metadata.labels), e.g. "
                        + ", ".join(f"{t}: <value>" for t in missing)
                        + ".",
                    )
                )
        if req.environment and envs and req.environment not in envs:
            findings.append(
                req.finding(
                    "fleet.environment",
                    W,
                    "name",
                    f"environment {req.environment!r} is not in the fleet config",
                    f"Known environments: {', '.join(sorted(envs))}.",
                )
            )
        if req.environment in (production.get("environments") or []) and req.paths.get("subnets"):
            subnets = req.value("subnets")
            if isinstance(subnets, list) and not any(isinstance(s, str) and "${" in s for s in subnets):
                need = int(production.get("min_subnets") or 0)
                if len(subnets) < need:
                    findings.append(
                        req.finding(
                            "fleet.production",
                            E,
                            "subnets",
                            f"production needs at least {need} subnets, got {len(subnets)}",
                            "Spread production across three or more subnets in distinct availability zones.",
                        )
                    )
                known = [zones[s] for s in subnets if isinstance(s, str) and s in zones]
                need_z = int(production.get("min_zones") or 0)
                if zones and len(subnets) >= need and len(known) == len(subnets) and len(set(known)) < need_z:
                    findings.append(
                        req.finding(
                            "fleet.production",
                            E,
                            "subnets",
                            f"production subnets span {len(set(known))} availability zone(s): "
                            f"{', '.join(sorted(set(known)))}",
                            f"Use subnets in at least {need_z} distinct availability zones.",
                        )
                    )
    return findings


def _bounds(req: ClusterRequest, envs: Mapping[str, Any]) -> list[Finding]:
    lo, hi, want = (_number(req.value(k)) for k in ("min_size", "max_size", "desired_size"))
    out: list[Finding] = []
    E = Severity.ERROR
    if lo is not None and hi is not None and lo > hi:
        out.append(
            req.finding(
                "fleet.scaling",
                E,
                "min_size",
                f"minSize {lo} is greater than maxSize {hi}",
                "Keep minSize <= desiredSize <= maxSize.",
            )
        )
    if want is not None and lo is not None and want < lo:
        out.append(
            req.finding(
                "fleet.scaling",
                E,
                "desired_size",
                f"desiredSize {want} is below minSize {lo}",
                "Keep minSize <= desiredSize <= maxSize.",
            )
        )
    if want is not None and hi is not None and want > hi:
        out.append(
            req.finding(
                "fleet.scaling",
                E,
                "desired_size",
                f"desiredSize {want} is above maxSize {hi}",
                "Keep minSize <= desiredSize <= maxSize.",
            )
        )
    env = envs.get(req.environment or "") if req.environment else None
    cap = _number((env or {}).get("max_nodes")) if isinstance(env, dict) else None
    if cap is not None and hi is not None and hi > cap:
        out.append(
            req.finding(
                "fleet.scaling",
                E,
                "max_size",
                f"maxSize {hi} exceeds the {req.environment} environment's cap of {cap} nodes",
                f"Lower maxSize to {cap} or less, or ask the platform team to raise the {req.environment} "
                "cap.",
            )
        )
    return out


# ---------------------------------------------------------------- EKS versions


def _version_of(req: ClusterRequest) -> tuple[tuple[int, int] | None, Any]:
    raw = req.value("version")
    return (parse_minor(raw) if raw is not None else None), raw


def eks_rules(
    ctx: Context,
    requests: list[ClusterRequest],
    base_versions: dict[tuple[str, str], tuple[int, int]],
) -> list[Finding]:
    """Return the EKS version findings: support status, float versions, skew and skipped upgrades."""
    cfg = ctx.section("eks")
    allow_extended = bool(cfg.get("allow_extended_support", False))
    catalog: EksCatalog = ctx.eks
    findings: list[Finding] = []
    E, W, N = Severity.ERROR, Severity.WARNING, Severity.NOTICE
    standard = catalog.supported_standard(ctx.today)
    newest = ", ".join(standard[:3]) or "a supported version"
    clusters: dict[str, tuple[int, int]] = {}
    for req in requests:
        version, raw = _version_of(req)
        if raw is None:
            continue
        if isinstance(raw, float):
            findings.append(
                req.finding(
                    "eks.version",
                    E,
                    "version",
                    f"version {raw!r} is a YAML number, not a string",
                    f'Quote it: version: "{raw}" (an unquoted 1.30 reads as 1.3).',
                )
            )
            continue
        if version is None:
            findings.append(
                req.finding(
                    "eks.version",
                    E,
                    "version",
                    f"version {raw!r} is not a Kubernetes minor version",
                    'Write it as "1.33".',
                )
            )
            continue
        support = catalog.support(version, ctx.today)
        label = format_minor(version)
        if support.status == "unknown":
            findings.append(
                req.finding(
                    "eks.version",
                    N,
                    "version",
                    f"Kubernetes {label} is not in the {catalog.source}",
                    "It may be newer than the table: check the EKS release calendar.",
                )
            )
        elif support.status == "extended" and support.entry is not None:
            sev = W if allow_extended else E
            findings.append(
                req.finding(
                    "eks.version",
                    sev,
                    "version",
                    f"Kubernetes {label} left EKS standard support on {support.entry.end_of_standard} "
                    f"(extended support, at extra cost, ends {support.entry.end_of_extended})",
                    f"Use a version in standard support: {newest}."
                    + (
                        ""
                        if allow_extended
                        else " Extended support is not allowed by eks.allow_extended_support."
                    ),
                )
            )
        elif support.status == "unsupported":
            ended = (
                f": standard support ended {support.entry.end_of_standard}, extended support ended "
                f"{support.entry.end_of_extended}"
                if support.entry
                else f": it is not in the {catalog.source}"
            )
            findings.append(
                req.finding(
                    "eks.version",
                    E,
                    "version",
                    f"Kubernetes {label} is out of EKS support{ended}",
                    f"Use a version in standard support as of {ctx.today}: {newest}.",
                )
            )
        name = req.name
        if req.role == "cluster" and name:
            clusters[name] = version
            before = base_versions.get((req.doc.path, name))
            if before and (version[0] != before[0] or version[1] - before[1] > 1):
                findings.append(
                    req.finding(
                        "eks.upgrade",
                        E,
                        "version",
                        f"upgrade from {format_minor(before)} to {label} skips a minor version",
                        f"EKS upgrades one minor version at a time: go to {before[0]}.{before[1] + 1} first.",
                    )
                )
            if before and version < before:
                findings.append(
                    req.finding(
                        "eks.upgrade",
                        E,
                        "version",
                        f"downgrade from {format_minor(before)} to {label}",
                        "EKS cannot downgrade a control plane; keep the current version.",
                    )
                )
    for req in requests:
        if req.role != "nodegroup":
            continue
        version, _ = _version_of(req)
        cluster = req.value("cluster_name")
        cp = clusters.get(str(cluster)) if cluster else None
        if (
            cp is None
            and len(clusters) == 1
            and (cluster is None or "${" in str(req.values.get("cluster_name")))
        ):
            cp = next(iter(clusters.values()))
        if version and cp and version > cp:
            findings.append(
                req.finding(
                    "eks.skew",
                    E,
                    "version",
                    f"node group version {format_minor(version)} is newer than its control plane "
                    f"{format_minor(cp)}",
                    "Upgrade the control plane first; node groups may not be newer.",
                )
            )
    return findings


ACK_EKS_GROUP = "eks.services.k8s.aws"
#: ACK's and Crossplane's (community and Upbound providers) ``Addon`` groups.
EKS_ADDON_GROUPS = ("eks.aws.crossplane.io", "eks.aws.upbound.io", "eks.aws.m.upbound.io", ACK_EKS_GROUP)


@dataclass(frozen=True, slots=True)
class EksAddon:
    """An EKS ``Addon`` object of ACK or Crossplane, read the way both write it."""

    name: str
    version: str
    cluster: str  # "" when the object does not say
    at: tuple[str, ...]  # where its version is


def eks_addon(group: str, kind: str, data: Any) -> EksAddon | None:
    """The add-on ``data`` (an object of API group ``group``) is, or None when it is none or
    lacks a name or version."""
    if kind != "Addon" or group not in EKS_ADDON_GROUPS or not isinstance(data, dict):
        return None
    spec = as_dict(data.get("spec"))
    crossplane = group != ACK_EKS_GROUP  # Crossplane writes the add-on under forProvider
    fp = as_dict(spec.get("forProvider", spec)) if crossplane else spec
    name, version, cluster = (
        fp.get("addonName") or spec.get("name"),
        fp.get("addonVersion"),
        fp.get("clusterName"),
    )
    if not (name and version):
        return None
    at = ("spec", "forProvider", "addonVersion") if crossplane else ("spec", "addonVersion")
    return EksAddon(str(name), str(version), str(cluster or ""), at)


def addon_rules(
    ctx: Context, docs: list[Doc], addons: Mapping[tuple[str, str], frozenset[str]] | None
) -> list[Finding]:
    """Check EKS Addon versions against ``addons`` ((addon name, k8s minor) -> versions) when known."""
    if not addons:
        return []
    findings: list[Finding] = []
    versions_of_clusters = {}
    for req in requests_in(docs, ctx.config):
        v, _ = _version_of(req)
        if req.role == "cluster" and v and req.name:
            versions_of_clusters[req.name] = format_minor(v)
    for doc in docs:
        addon = eks_addon(doc.group, doc.kind, doc.data)
        if addon is None:
            continue
        name, version = addon.name, addon.version
        k8s = versions_of_clusters.get(addon.cluster) if addon.cluster else None
        if k8s is None and len(versions_of_clusters) == 1:
            k8s = next(iter(versions_of_clusters.values()))
        if not k8s or (name, k8s) not in addons:
            continue
        allowed = addons[(name, k8s)]
        if version not in allowed:
            newest = sorted(allowed, reverse=True)[:3]
            findings.append(
                doc.finding(
                    "eks.addon",
                    Severity.ERROR,
                    list(addon.at),
                    f"add-on {name} {version} is not offered for Kubernetes {k8s}",
                    f"Use one of: {', '.join(newest)} (from describe_addon_versions).",
                )
            )
    return findings
