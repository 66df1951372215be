"""Fleet facts -> dashboard rows (pure: no git, disk or network).

Facts come per repository and environment branch: the clusters the branch deploys (as the
renderer attributes them, with the cluster request's version and region), each cluster's
Gatekeeper violations and secret findings on its rendered objects, the branch's health and
promotion state, and the governance of merged pull requests. :func:`build_fleet` turns them
into the JSON the page, ``/fleet.json`` and the exports read: one row per cluster with its
EKS support state on a given day, what needs action, counts and a "needs action first" order.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bot.domain.promotion.environments import EnvironmentConfigError
from bot.domain.promotion.freeze import active_freeze
from bot.domain.validate.eks import EksCatalog, parse_minor

#: Days before the end of standard support from which a cluster needs action.
WARN_DAYS = 90
#: Governance window.
GOVERNANCE_DAYS = 30
#: Objects listed per cluster in the drill-down (the counts stay exact).
MAX_OBJECTS = 200

SEVERITIES = ("error", "warning", "notice")


@dataclass(frozen=True, slots=True)
class Violation:
    """One Gatekeeper violation on one rendered object of a cluster."""

    constraint: str  # Kind/name of the constraint
    severity: str  # error | warning | notice
    kind: str
    namespace: str
    name: str
    message: str
    path: str = ""  # the object's source file
    api_version: str = "v1"


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """One secret-hygiene finding on a cluster's objects or files."""

    rule: str
    path: str
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class Addon:
    """One EKS add-on of a cluster: its version and the recommended one (None when unknown)."""

    name: str
    version: str
    recommended: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterFacts:
    """What one environment branch of one repository says about one cluster."""

    repo: str
    branch: str
    env: str
    cluster: str
    region: str = ""
    version: str | None = None
    source: str = ""  # the cluster request's file
    apps: int = 0  # rendered targets attributed to the cluster
    addons: tuple[Addon, ...] = ()
    violations: tuple[Violation, ...] = ()
    secrets: tuple[SecretFinding, ...] = ()
    skipped: tuple[str, ...] = ()  # targets that could not be rendered (fail closed: shown)


@dataclass(frozen=True, slots=True)
class EnvFacts:
    """One environment branch: its tip, health, and what waits to be promoted out of it."""

    repo: str
    env: str
    branch: str
    head: str = ""
    health: str = "unknown"  # healthy | failing | pending | unknown (the promotion gates' signals)
    health_detail: str = ""
    next_env: str = ""
    pending_commits: int = 0  # commits here not yet in the next environment's branch
    open_promotions: tuple[dict[str, Any], ...] = ()  # {"number", "title", "gates"}
    last_promotion: dict[str, Any] | None = None  # {"number", "title", "merged_at"}
    #: open promotion PRs into this environment the bot holds (its store: ``/hold``, the label)
    holds: tuple[dict[str, Any], ...] = ()  # {"number", "title"}
    #: the freeze windows of promotions into this environment (the configuration's ``gates.freeze``)
    freeze: tuple[dict[str, Any], ...] = ()
    updated_at: str = ""


@dataclass(frozen=True, slots=True)
class MergedPR:
    """One merged pull request, as the bot's own check runs saw it when it merged."""

    repo: str
    number: int
    title: str
    base: str
    merged_at: str  # ISO 8601
    signed: bool  # gitops-bot/signatures concluded success
    approved: bool  # gitops-bot/approvals concluded success
    failing_checks: tuple[str, ...] = ()  # gitops-bot checks that were failing when it merged


@dataclass(slots=True)
class FleetFacts:
    """Everything the dashboard shows, before it is judged on a day."""

    clusters: list[ClusterFacts] = field(default_factory=list)
    envs: list[EnvFacts] = field(default_factory=list)
    merged: list[MergedPR] = field(default_factory=list)


# ---------------------------------------------------------------- (de)serialisation


def facts_to_json(facts: FleetFacts) -> dict[str, Any]:
    """Return ``facts`` as plain JSON data (what the store keeps)."""
    return {
        "clusters": [asdict(c) for c in facts.clusters],
        "envs": [asdict(e) for e in facts.envs],
        "merged": [asdict(m) for m in facts.merged],
    }


def _cluster_from(data: Mapping[str, Any]) -> ClusterFacts:
    d = dict(data)
    d["addons"] = tuple(Addon(**a) for a in d.get("addons") or ())
    d["violations"] = tuple(Violation(**v) for v in d.get("violations") or ())
    d["secrets"] = tuple(SecretFinding(**s) for s in d.get("secrets") or ())
    d["skipped"] = tuple(d.get("skipped") or ())
    return ClusterFacts(**d)


_ENV_FIELDS = frozenset(f.name for f in fields(EnvFacts))


def _env_from(data: Mapping[str, Any]) -> EnvFacts:
    d = {k: v for k, v in data.items() if k in _ENV_FIELDS}  # a field an older version kept is dropped
    d["open_promotions"] = tuple(d.get("open_promotions") or ())
    d["holds"] = tuple(h for h in d.get("holds") or () if isinstance(h, dict))
    d["freeze"] = tuple(dict(f) for f in d.get("freeze") or () if isinstance(f, dict))
    return EnvFacts(**d)


def _merged_from(data: Mapping[str, Any]) -> MergedPR:
    d = dict(data)
    d["failing_checks"] = tuple(d.get("failing_checks") or ())
    return MergedPR(**d)


def facts_from_json(data: Mapping[str, Any]) -> FleetFacts:
    """Inverse of :func:`facts_to_json`."""
    return FleetFacts(
        clusters=[_cluster_from(c) for c in data.get("clusters") or ()],
        envs=[_env_from(e) for e in data.get("envs") or ()],
        merged=[_merged_from(m) for m in data.get("merged") or ()],
    )


# ---------------------------------------------------------------- judging


def _support(version: str | None, catalog: EksCatalog, today: date) -> dict[str, Any]:
    minor = parse_minor(version) if version else None
    if minor is None:
        return {"state": "unknown", "standard_days": None, "extended_days": None}
    support = catalog.support(minor, today)
    entry = support.entry
    return {
        "state": support.status,
        "standard_end": entry.end_of_standard.isoformat() if entry else None,
        "extended_end": entry.end_of_extended.isoformat() if entry else None,
        "standard_days": (entry.end_of_standard - today).days if entry else None,
        "extended_days": (entry.end_of_extended - today).days if entry else None,
    }


def _policy(violations: Sequence[Violation]) -> dict[str, Any]:
    by_severity = Counter(v.severity for v in violations)
    by_constraint = Counter(v.constraint for v in violations)
    return {
        "total": len(violations),
        "by_severity": {s: by_severity.get(s, 0) for s in SEVERITIES},
        "by_constraint": dict(sorted(by_constraint.items())),
        "objects": [asdict(v) for v in violations[:MAX_OBJECTS]],
    }


def freeze_state(env: EnvFacts | None, now: datetime) -> dict[str, Any] | None:
    """Return the freeze in force on promotions into ``env`` at ``now`` (None when none).

    ``{"until": ISO time, "reason": ...}``, or ``{"error": ...}`` for a window that cannot be
    read: the promotion gate fails on it too, so it is shown, never taken as "not frozen".
    """
    if env is None or not env.freeze:
        return None
    try:
        found = active_freeze(env.freeze, now)
    except (EnvironmentConfigError, ValueError, TypeError) as exc:
        return {"until": None, "reason": "", "error": str(exc) or "unreadable freeze window"}
    if found is None:
        return None
    return {"until": found.until.isoformat(), "reason": found.reason, "error": ""}


def _holds_reason(env_name: str, holds: Sequence[Mapping[str, Any]]) -> str:
    numbers = ", ".join(f"#{h.get('number')}" for h in holds)
    word = "promotion" if len(holds) == 1 else "promotions"
    return f"{word} {numbers} into {env_name} held (`/unhold` releases)"


def _freeze_reasons(support: Mapping[str, Any], freeze: Mapping[str, Any] | None) -> list[str]:
    """A broken window, or a freeze that lasts past the end of the cluster's support."""
    if not freeze:
        return []
    if freeze.get("error"):
        return [f"freeze window unreadable: {freeze['error']}"]
    until = str(freeze.get("until") or "")[:10]
    state = support["state"]
    end = support.get("standard_end") if state == "standard" else support.get("extended_end")
    if state in ("standard", "extended") and end and until and end <= until:
        which = "standard" if state == "standard" else "extended"
        return [f"frozen until {until}, after {which} support ends ({end})"]
    return []


def needs_action(
    support: Mapping[str, Any],
    policy: Mapping[str, Any],
    secrets: int,
    health: str,
    addons_behind: int,
    skipped: int,
    *,
    env_name: str = "",
    holds: Sequence[Mapping[str, Any]] = (),
    freeze: Mapping[str, Any] | None = None,
) -> list[str]:
    """Return why a cluster needs action, most urgent first (empty when it does not).

    A hold on a promotion into the cluster's environment needs someone to release it; a freeze
    needs action only when its window is broken or lasts past the end of the cluster's support
    (the upgrade cannot land in time). A plain freeze only orders the row later.
    """
    reasons: list[str] = []
    state, days = support["state"], support.get("standard_days")
    if state == "unsupported":
        reasons.append("Kubernetes version out of EKS support")
    elif state == "extended":
        reasons.append("in extended support (extra cost)")
    elif state == "standard" and days is not None and days <= WARN_DAYS:
        reasons.append(f"standard support ends in {days} days")
    if health == "failing":
        reasons.append("health signals failing")
    reasons.extend(_freeze_reasons(support, freeze))
    if policy["by_severity"]["error"]:
        reasons.append(f"{policy['by_severity']['error']} policy violations")
    if secrets:
        reasons.append(f"{secrets} secret findings")
    if skipped:
        reasons.append(f"{skipped} targets not rendered")
    if holds:
        reasons.append(_holds_reason(env_name, holds))
    if policy["by_severity"]["warning"]:
        reasons.append(f"{policy['by_severity']['warning']} policy warnings")
    if addons_behind:
        reasons.append(f"{addons_behind} add-ons behind the recommended version")
    return reasons


_URGENCY = {
    "Kubernetes version out of EKS support": 100,
    "health signals failing": 90,
}


def _urgency(reasons: Sequence[str]) -> int:
    score = 0
    for r in reasons:
        score += _URGENCY.get(r, 0)
        if (
            "policy violations" in r
            or "secret findings" in r
            or "not rendered" in r
            or r.startswith("freeze window unreadable")
        ):
            score += 50
        elif "extended support" in r or "support ends" in r:
            score += 40  # "frozen until ..., after ... support ends" too
        elif r.endswith("held (`/unhold` releases)"):
            score += 20
        elif r:
            score += 10
    return score


def cluster_row(
    c: ClusterFacts,
    env: EnvFacts | None,
    catalog: EksCatalog,
    today: date,
    freeze: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the dashboard row of one cluster (``freeze``: :func:`freeze_state` of its environment)."""
    support = _support(c.version, catalog, today)
    policy = _policy(c.violations)
    behind = sum(1 for a in c.addons if addon_behind(a.version, a.recommended))
    health = env.health if env else "unknown"
    holds = list(env.holds) if env else []
    reasons = needs_action(
        support,
        policy,
        len(c.secrets),
        health,
        behind,
        len(c.skipped),
        env_name=c.env,
        holds=holds,
        freeze=freeze,
    )
    return {
        "id": f"{c.repo}:{c.branch}:{c.cluster}",
        "repo": c.repo,
        "branch": c.branch,
        "env": c.env,
        "cluster": c.cluster,
        "region": c.region,
        "version": c.version,
        "source": c.source,
        "apps": c.apps,
        "support": support,
        "addons": [asdict(a) | {"current": not addon_behind(a.version, a.recommended)} for a in c.addons],
        "addons_behind": behind,
        "policy": policy,
        "secrets": [asdict(s) for s in c.secrets],
        "skipped": list(c.skipped),
        "health": health,
        "pending_commits": env.pending_commits if env else 0,
        "holds": holds,
        "frozen": freeze,
        "needs_action": reasons,
        "urgency": _urgency(reasons),
        "state": "action" if reasons else "ok",
    }


_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-eksbuild\.(\d+))?")


def addon_behind(version: str, recommended: str | None) -> bool:
    """Whether add-on ``version`` is older than ``recommended`` (``v1.19.2-eksbuild.1`` ordering).

    A version newer than the bundled table's (the table lags AWS) is not behind; a version that
    cannot be read is behind when it differs (shown, never taken as current).
    """
    if not recommended or recommended == version:
        return False
    have, want = _VERSION.match(version), _VERSION.match(recommended)
    if have is None or want is None:
        return True
    key = [tuple(int(g or 0) for g in m.groups()) for m in (have, want)]
    return key[0] < key[1]


def _governance(merged: Iterable[MergedPR], today: date) -> dict[str, dict[str, Any]]:
    since = today - timedelta(days=GOVERNANCE_DAYS)
    out: dict[str, dict[str, Any]] = {}
    for m in sorted(merged, key=lambda m: (m.repo, m.merged_at, m.number)):
        try:
            day = datetime.fromisoformat(m.merged_at.replace("Z", "+00:00")).date()
        except ValueError:
            continue
        if day < since:
            continue
        g = out.setdefault(m.repo, {"merged": 0, "signed_and_approved": 0, "bypasses": []})
        g["merged"] += 1
        if m.signed and m.approved and not m.failing_checks:
            g["signed_and_approved"] += 1
        if m.failing_checks:
            g["bypasses"].append(
                {
                    "number": m.number,
                    "title": m.title,
                    "base": m.base,
                    "merged_at": m.merged_at,
                    "failing": list(m.failing_checks),
                }
            )
    return out


def _summary(rows: Sequence[Mapping[str, Any]], envs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return the counts and filter choices of ``rows`` and environments ``envs``."""
    return {
        "counts": {
            "clusters": len(rows),
            "needs_action": sum(1 for r in rows if r["needs_action"]),
            "support": dict(sorted(Counter(r["support"]["state"] for r in rows).items())),
            "violations": {s: sum(r["policy"]["by_severity"][s] for r in rows) for s in SEVERITIES},
            "secrets": sum(len(r["secrets"]) for r in rows),
            "pending_commits": sum(e["pending_commits"] for e in envs),
            "held": sum(len(e["holds"]) for e in envs),
            "frozen": sum(1 for e in envs if e["frozen"]),
        },
        "filters": {
            "env": sorted({r["env"] for r in rows}),
            "region": sorted({r["region"] for r in rows if r["region"]}),
            "repo": sorted({r["repo"] for r in rows}),
        },
    }


def build_fleet(
    facts: FleetFacts, catalog: EksCatalog, today: date, now: datetime | None = None
) -> dict[str, Any]:
    """Return the dashboard's JSON: rows (needs action first), environments, governance, counts.

    ``now`` (timezone-aware; default: the start of ``today`` in UTC) judges freeze windows.
    Among rows equally urgent, those whose environment is frozen come last: their fix cannot
    be promoted yet.
    """
    now = now if now is not None else datetime.combine(today, time.min, UTC)
    envs = {(e.repo, e.branch): e for e in facts.envs}
    frozen = {key: freeze_state(e, now) for key, e in envs.items()}
    rows = [
        cluster_row(c, envs.get((c.repo, c.branch)), catalog, today, frozen.get((c.repo, c.branch)))
        for c in facts.clusters
    ]
    rows.sort(key=lambda r: (-r["urgency"], bool(r["frozen"]), r["env"], r["cluster"], r["repo"]))
    environments = [
        asdict(e) | {"frozen": frozen[(e.repo, e.branch)]}
        for e in sorted(facts.envs, key=lambda e: (e.repo, e.branch))
    ]
    return {
        "generated": today.isoformat(),
        "calendar": catalog.source,
        "clusters": rows,
        "environments": environments,
        "governance": _governance(facts.merged, today),
    } | _summary(rows, environments)


def only_repos(fleet: Mapping[str, Any], repos: Iterable[str]) -> dict[str, Any]:
    """Return ``fleet`` with only the rows, environments and governance of ``repos``, counts redone."""
    keep = set(repos)
    rows = [r for r in fleet["clusters"] if r["repo"] in keep]
    envs = [e for e in fleet["environments"] if e["repo"] in keep]
    return (
        dict(fleet)
        | {
            "clusters": rows,
            "environments": envs,
            "governance": {k: v for k, v in fleet["governance"].items() if k in keep},
        }
        | _summary(rows, envs)
    )


def summary_lines(fleet: Mapping[str, Any], limit: int = 5) -> list[str]:
    """Return a short text summary of what the page shows (the demo's last lines)."""
    c = fleet["counts"]
    support = ", ".join(f"{n} {state}" for state, n in c["support"].items()) or "none"
    lines = [
        f"{c['clusters']} clusters on {len(fleet['environments'])} environment branches; "
        f"{c['needs_action']} need action.",
        f"EKS support: {support}. Policy: {c['violations']['error']} violations, "
        f"{c['violations']['warning']} warnings. Secret findings: {c['secrets']}.",
    ]
    for row in [r for r in fleet["clusters"] if r["needs_action"]][:limit]:
        lines.append(f"  needs action: {row['cluster']} ({row['env']}): {'; '.join(row['needs_action'])}")
    for env in fleet["environments"]:
        last = env.get("last_promotion")
        lines.append(
            f"  {env['env']}: health {env['health']}, {env['pending_commits']} commits waiting"
            + (f" for {env['next_env']}" if env["next_env"] else "")
            + (f", last promotion #{last['number']}" if last else "")
            + "".join(f", #{h['number']} held" for h in env.get("holds") or ())
            + _frozen_text(env.get("frozen"))
        )
    for repo, g in fleet["governance"].items():
        lines.append(
            f"Governance ({repo}, 30 days): {g['merged']} merged, "
            f"{g['signed_and_approved']} signed and approved, "
            f"{len(g['bypasses'])} merged with a failing check."
        )
    return lines


def _frozen_text(frozen: Mapping[str, Any] | None) -> str:
    if not frozen:
        return ""
    if frozen.get("error"):
        return f", freeze window unreadable ({frozen['error']})"
    return f", frozen until {str(frozen['until'])[:16].replace('T', ' ')} UTC ({frozen['reason']})"
