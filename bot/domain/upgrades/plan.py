"""Upgrade plans for one EKS cluster: hops, add-ons, removed APIs, node groups and steps (pure).

Facts in (the cluster's request, node groups, add-ons and rendered objects, each with the file
and line it comes from; the EKS calendar; the add-on table), a plan out. Nothing here reads
the repository or asks AWS: :mod:`bot.upgrades.facts` gathers the facts.

In place, EKS upgrades a control plane one minor version at a time, so 1.29 -> 1.32 is three
hops, each followed by the node groups and the add-ons. Blue/green starts a new cluster at the
target, so it may jump straight there when ``upgrades.blue_green.allow_jump`` is on (default).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from bot.domain.config import CONFIG_PATH
from bot.domain.model import Finding, Severity
from bot.domain.upgrades.tables import ADDON_VERSIONS, REMOVALS_BY_KEY, Removal
from bot.domain.validate.eks import EksCatalog, format_minor, parse_minor

Strategy = Literal["in-place", "blue-green"]
STRATEGIES: tuple[Strategy, ...] = ("in-place", "blue-green")
#: Kubernetes lets a kubelet be this many minors older than its API server (1.28 and newer).
MAX_KUBELET_SKEW = 3


class PlanError(ValueError):
    """The plan cannot be made as asked (unknown version, a downgrade): a usage error."""


@dataclass(frozen=True, slots=True)
class NodeGroupFact:
    """A node group of the cluster; ``version`` is ``None`` when it follows the control plane."""

    name: str
    version: tuple[int, int] | None
    path: str
    line: int
    ack: bool = False  # an ACK Nodegroup (eks.services.k8s.aws)


@dataclass(frozen=True, slots=True)
class AddonFact:
    """An EKS add-on installed on the cluster (an ACK or Crossplane ``Addon`` object)."""

    name: str
    version: str
    path: str
    line: int
    ack: bool = False  # an ACK Addon (eks.services.k8s.aws)


@dataclass(frozen=True, slots=True)
class ObjectFact:
    """One object the cluster runs, with the file and line that produce it."""

    api_version: str
    kind: str
    name: str
    path: str
    line: int


@dataclass(frozen=True, slots=True)
class ClusterFacts:
    """What the repository says about one cluster."""

    name: str
    env: str
    region: str
    version: tuple[int, int]
    path: str
    line: int
    folder: str = ""
    registry_path: str = ""
    nodegroups: tuple[NodeGroupFact, ...] = ()
    addons: tuple[AddonFact, ...] = ()
    objects: tuple[ObjectFact, ...] = ()
    folder_files: tuple[
        str, ...
    ] = ()  # the files of its own folder besides the request (blue/green copies them)


@dataclass(frozen=True, slots=True)
class UpgradeSettings:
    """The ``upgrades`` config section, with its defaults."""

    lead_time_days: int = 90
    allow_jump: bool = True
    traffic_steps: tuple[int, ...] = (10, 50, 100)
    green_suffixes: tuple[str, str] = ("-a", "-b")
    traffic_files: tuple[str, ...] = ()
    in_place_prs: str = "auto"  # per-hop, per-part, or auto (per-part where ACK manages nodes or add-ons)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> UpgradeSettings:
        section = config.get("upgrades") if isinstance(config.get("upgrades"), dict) else {}
        assert isinstance(section, dict)
        bg = section.get("blue_green") if isinstance(section.get("blue_green"), dict) else {}
        assert isinstance(bg, dict)
        suffixes = bg.get("suffixes") or ["-a", "-b"]
        traffic = bg.get("traffic") or []
        in_place = section.get("in_place") if isinstance(section.get("in_place"), dict) else {}
        assert isinstance(in_place, dict)
        return cls(
            in_place_prs=str(in_place.get("pull_requests") or "auto"),
            lead_time_days=_days(section.get("lead_time", 90)),
            allow_jump=bool(bg.get("allow_jump", True)),
            traffic_steps=tuple(int(s) for s in bg.get("steps") or (10, 50, 100)),
            green_suffixes=(str(suffixes[0]), str(suffixes[1])),
            traffic_files=tuple(
                sorted({str(t.get("path")) for t in traffic if isinstance(t, dict) and t.get("path")})
            ),
        )


def _days(value: Any) -> int:
    text = str(value).strip().rstrip("d").strip()
    return int(text) if text.isdigit() else 90


@dataclass(frozen=True, slots=True)
class AddonChange:
    name: str
    from_version: str
    to_version: str
    path: str
    line: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "from": self.from_version,
            "to": self.to_version,
            "path": self.path,
            "line": self.line,
        }


@dataclass(frozen=True, slots=True)
class RemovedApi:
    obj: ObjectFact
    removal: Removal

    def to_json(self) -> dict[str, Any]:
        return {
            "apiVersion": self.obj.api_version,
            "kind": self.obj.kind,
            "name": self.obj.name,
            "path": self.obj.path,
            "line": self.obj.line,
            "removed_in": format_minor(self.removal.removed_in),
            "replacement": self.removal.replacement,
        }


@dataclass(frozen=True, slots=True)
class NodeGroupPlan:
    name: str
    from_version: tuple[int, int]
    to_version: tuple[int, int]
    skew: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "from": format_minor(self.from_version),
            "to": format_minor(self.to_version),
            "skew": self.skew,
        }


@dataclass(frozen=True, slots=True)
class Step:
    title: str
    files: tuple[str, ...] = ()
    kind: str = ""
    version: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "files": list(self.files)}


@dataclass(slots=True)
class UpgradePlan:
    cluster: str
    env: str
    from_version: tuple[int, int]
    to_version: tuple[int, int]
    strategy: Strategy
    hops: list[tuple[int, int]]
    green: str = ""
    addons: list[AddonChange] = field(default_factory=list)
    removed_apis: list[RemovedApi] = field(default_factory=list)
    nodegroups: list[NodeGroupPlan] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    addon_source: str = "the bundled table"  # or "AWS (describe_addon_versions)"
    addon_table: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> version -> add-on version

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "env": self.env,
            "from": format_minor(self.from_version),
            "to": format_minor(self.to_version),
            "strategy": self.strategy,
            "green": self.green or None,
            "hops": [format_minor(h) for h in self.hops],
            "addons": [a.to_json() for a in self.addons],
            "removed_apis": [r.to_json() for r in self.removed_apis],
            "nodegroups": [n.to_json() for n in self.nodegroups],
            "steps": [s.to_json() for s in self.steps],
            "findings": [f.to_json() for f in self.findings],
        }


def default_target(catalog: EksCatalog, today: date) -> tuple[int, int] | None:
    """Return the newest version in EKS standard support on ``today``."""
    standard = catalog.supported_standard(today)
    return parse_minor(standard[0]) if standard else None


def parse_target(raw: str, catalog: EksCatalog) -> tuple[int, int]:
    """Return the version ``--to`` names; :class:`PlanError` when it is not a known EKS version."""
    version = parse_minor(raw)
    if version is None:
        raise PlanError(f"{raw!r} is not a Kubernetes minor version (write it as 1.33)")
    if format_minor(version) not in catalog.versions:
        known = ", ".join(sorted(catalog.versions, key=lambda v: parse_minor(v) or (0, 0)))
        raise PlanError(f"Kubernetes {format_minor(version)} is not in the {catalog.source} ({known})")
    return version


def hops_between(
    current: tuple[int, int], target: tuple[int, int], strategy: Strategy, *, allow_jump: bool = True
) -> list[tuple[int, int]]:
    """Return the versions the control plane passes through, in order (empty when already there)."""
    if target <= current:
        return []
    if strategy == "blue-green" and allow_jump:
        return [target]
    return [(current[0], m) for m in range(current[1] + 1, target[1] + 1)]


def green_name(blue: str, suffixes: tuple[str, str] = ("-a", "-b")) -> str:
    """Return the name of the cluster that replaces ``blue``: alternate the suffixes (``-a`` <-> ``-b``)."""
    first, second = suffixes
    if blue.endswith(second):
        return blue[: -len(second)] + first
    if blue.endswith(first):
        return blue[: -len(first)] + second
    return blue + second


def removed_apis(objects: Iterable[ObjectFact], target: tuple[int, int]) -> list[RemovedApi]:
    """Return the objects whose API is not served at ``target``, by file and line."""
    out = []
    for obj in objects:
        removal = REMOVALS_BY_KEY.get((obj.api_version, obj.kind))
        if removal is not None and removal.removed_in <= target:
            out.append(RemovedApi(obj, removal))
    return sorted(out, key=lambda r: (r.obj.path, r.obj.line, r.obj.kind, r.obj.name))


def _addon_version(table: Mapping[str, Mapping[str, str]], name: str, version: tuple[int, int]) -> str | None:
    return (table.get(name) or {}).get(format_minor(version))


def addon_changes(
    addons: Iterable[AddonFact], target: tuple[int, int], table: Mapping[str, Mapping[str, str]]
) -> list[AddonChange]:
    """Return the add-ons whose version must change for ``target`` (by the table)."""
    out = []
    for addon in addons:
        wanted = _addon_version(table, addon.name, target)
        if wanted and wanted != addon.version:
            out.append(AddonChange(addon.name, addon.version, wanted, addon.path, addon.line))
    return sorted(out, key=lambda a: a.name)


def _unique(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p for p in paths if p))


def green_path(path: str, blue: str, green: str) -> str:
    """``path`` of blue's (its request, or a file of its own folder) as green's."""
    return path.replace(blue, green)


ACK_TERMINAL = "aws-controllers-k8s/community#2957"


def per_part(cluster: ClusterFacts, mode: str) -> bool:
    """Whether an in-place hop is split into a PR per part (control plane, node groups, add-ons).

    ``auto`` splits where ACK manages the node groups or add-ons: ACK marks an update that EKS
    refuses because the control plane is not there yet as terminal and never retries it
    (:data:`ACK_TERMINAL`), so those updates must reach EKS only after the control plane's.
    Crossplane and kro retry, so one PR per hop converges there.
    """
    if mode in ("per-hop", "per-part"):
        return mode == "per-part"
    return any(n.ack for n in cluster.nodegroups) or any(a.ack for a in cluster.addons)


def _in_place_steps(
    cluster: ClusterFacts,
    hops: Sequence[tuple[int, int]],
    table: Mapping[str, Mapping[str, str]],
    split: bool,
) -> list[Step]:
    """One step (one PR) per hop, changing the control plane, then the node groups, then the
    add-ons made for that version (one commit each, in that order); with ``split``, one step
    per part, each opened after the previous one soaked healthy."""
    if split:
        return _in_place_parts(cluster, hops, table)
    steps = []
    for hop in hops:
        label = format_minor(hop)
        parts, files = ["control plane"], [cluster.path]
        if cluster.nodegroups:
            parts.append("node groups")
            files += [n.path for n in cluster.nodegroups]
        changes = addon_changes(cluster.addons, hop, table)
        if changes:
            parts.append("add-ons")
            files += [a.path for a in changes]
        steps.append(Step(f"Hop to {label} ({', then '.join(parts)})", _unique(files), "hop", label))
    return steps


def _in_place_parts(
    cluster: ClusterFacts, hops: Sequence[tuple[int, int]], table: Mapping[str, Mapping[str, str]]
) -> list[Step]:
    steps = []
    for hop in hops:
        label = format_minor(hop)
        steps.append(Step(f"Control plane to {label}", (cluster.path,), "control-plane", label))
        if cluster.nodegroups:
            steps.append(
                Step(
                    f"Node groups to {label}",
                    _unique(n.path for n in cluster.nodegroups),
                    "nodegroups",
                    label,
                )
            )
        changes = addon_changes(cluster.addons, hop, table)
        if changes:
            steps.append(Step(f"Add-ons for {label}", _unique(a.path for a in changes), "addons", label))
    return steps


def _blue_green_steps(
    cluster: ClusterFacts, green: str, target: tuple[int, int], settings: UpgradeSettings
) -> list[Step]:
    label = format_minor(target)
    traffic = settings.traffic_files
    steps = [
        Step(
            f"Create {green} at {label} beside {cluster.name}, with traffic weight 0",
            _unique(
                (
                    green_path(cluster.path, cluster.name, green),
                    *(green_path(f, cluster.name, green) for f in cluster.folder_files),
                    cluster.registry_path,
                    *traffic,
                )
            ),
            "create-green",
            label,
        ),
        Step(f"Smoke-test {green}: healthy, and its smoke signal green", (), "smoke", label),
    ]
    for weight in settings.traffic_steps:
        steps.append(
            Step(
                f"Shift traffic: {green} {weight}%, {cluster.name} {100 - weight}%",
                traffic,
                "traffic",
                str(weight),
            )
        )
    steps.append(
        Step(
            f"Decommission {cluster.name}: remove its workloads and traffic entries",
            _unique((*traffic, cluster.registry_path, *cluster.folder_files)),
            "decommission-workloads",
        )
    )
    steps.append(Step(f"Remove {cluster.name}'s cluster request", (cluster.path,), "decommission-cluster"))
    return steps


def plan_upgrade(
    cluster: ClusterFacts,
    catalog: EksCatalog,
    today: date,
    *,
    to: tuple[int, int] | None = None,
    strategy: Strategy = "in-place",
    settings: UpgradeSettings | None = None,
    addon_table: Mapping[str, Mapping[str, str]] | None = None,
) -> UpgradePlan:
    """Return the plan to take ``cluster`` to ``to`` (default: the newest in standard support)."""
    settings = settings or UpgradeSettings()
    table = ADDON_VERSIONS if addon_table is None else addon_table
    target = to or default_target(catalog, today) or cluster.version
    current = cluster.version
    if target < current:
        raise PlanError(
            f"{cluster.name} runs {format_minor(current)}: EKS cannot downgrade to {format_minor(target)}"
        )
    hops = hops_between(current, target, strategy, allow_jump=settings.allow_jump)
    plan = UpgradePlan(cluster.name, cluster.env, current, target, strategy, hops)
    findings = plan.findings
    where = (cluster.path, cluster.line)
    if not hops:
        findings.append(
            Finding(
                "upgrade.current",
                Severity.NOTICE,
                *where,
                f"{cluster.name} already runs Kubernetes {format_minor(current)}",
                "Nothing to upgrade; name a newer version with --to.",
            )
        )
    support = catalog.support(target, today)
    if support.status != "standard":
        findings.append(
            Finding(
                "upgrade.support",
                Severity.WARNING,
                *where,
                f"Kubernetes {format_minor(target)} is not in EKS standard support on {today} "
                f"({support.status})",
                "Choose a version in standard support: " + ", ".join(catalog.supported_standard(today)[:3]),
            )
        )
    plan.removed_apis = removed_apis(cluster.objects, target) if hops else []
    for r in plan.removed_apis:
        findings.append(
            Finding(
                "upgrade.removed-api",
                Severity.WARNING,
                r.obj.path,
                r.obj.line,
                f"{r.obj.kind} {r.obj.name} uses {r.obj.api_version}, which Kubernetes "
                f"{format_minor(r.removal.removed_in)} no longer serves",
                f"Move it to {r.removal.replacement} before the upgrade."
                if r.removal.replacement
                else "Remove it or replace it before the upgrade; the API has no successor.",
            )
        )
    plan.addons = addon_changes(cluster.addons, target, table) if hops else []
    for ng in cluster.nodegroups:
        version = ng.version or current
        skew = current[1] - version[1] if version[0] == current[0] else MAX_KUBELET_SKEW + 1
        plan.nodegroups.append(NodeGroupPlan(ng.name, version, target, skew))
        if skew > MAX_KUBELET_SKEW:
            findings.append(
                Finding(
                    "upgrade.skew",
                    Severity.WARNING,
                    ng.path,
                    ng.line,
                    f"node group {ng.name} runs {format_minor(version)}, {skew} minors behind its "
                    f"control plane {format_minor(current)} (Kubernetes allows {MAX_KUBELET_SKEW})",
                    "Upgrade the node group to its control plane's version first.",
                )
            )
    migrate: list[Step] = []
    if plan.removed_apis:
        migrate.append(
            Step(
                f"Move {len(plan.removed_apis)} object(s) off APIs removed by {format_minor(target)}",
                _unique(r.obj.path for r in plan.removed_apis),
                "migrate-apis",
            )
        )
    if not hops:
        plan.steps = []
    elif strategy == "blue-green":
        plan.green = green_name(cluster.name, settings.green_suffixes)
        plan.steps = migrate + _blue_green_steps(cluster, plan.green, target, settings)
        if not settings.traffic_files:
            findings.append(
                Finding(
                    "upgrade.no-traffic",
                    Severity.WARNING,
                    CONFIG_PATH,
                    1,
                    "blue/green shifts traffic, but `upgrades.blue_green.traffic` names no traffic objects: "
                    "the traffic steps would have nothing to change",
                    "List the files of the cluster's weighted DNS records or target groups under "
                    "`upgrades.blue_green.traffic` (docs/upgrades.md), or upgrade in place.",
                )
            )
    else:
        split = per_part(cluster, settings.in_place_prs)
        plan.steps = migrate + _in_place_steps(cluster, hops, table, split)
        if split and settings.in_place_prs == "auto":
            findings.append(
                Finding(
                    "upgrade.per-part",
                    Severity.NOTICE,
                    cluster.path,
                    cluster.line,
                    "each hop is split into a PR for the control plane, then the node groups, then "
                    "the add-ons: ACK manages this cluster's node groups or add-ons, and ACK stops for "
                    f"good on an update EKS refuses before the control plane is upgraded ({ACK_TERMINAL})",
                    "Set `upgrades.in_place.pull_requests: per-hop` for one PR per hop.",
                )
            )
    return plan


@dataclass(frozen=True, slots=True)
class DueUpgrade:
    """A cluster whose version leaves standard support within the lead time."""

    cluster: str
    env: str
    version: tuple[int, int]
    end_of_standard: date
    days_left: int
    target: tuple[int, int]


def due_upgrades(
    clusters: Iterable[ClusterFacts], catalog: EksCatalog, today: date, lead_time_days: int = 90
) -> list[DueUpgrade]:
    """Return the clusters whose standard support ends within ``lead_time_days`` (or has ended).

    Sorted by the days left, soonest first. A cluster on a version the calendar does not know
    (newer than its newest entry) is not due.
    """
    target = default_target(catalog, today)
    out = []
    for c in clusters:
        entry = catalog.versions.get(format_minor(c.version))
        if entry is None or target is None or c.version >= target:
            continue
        days = (entry.end_of_standard - today).days
        if days <= lead_time_days:
            out.append(DueUpgrade(c.name, c.env, c.version, entry.end_of_standard, days, target))
    return sorted(out, key=lambda d: (d.days_left, d.cluster))
