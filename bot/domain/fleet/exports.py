"""Exports of the fleet JSON (pure): PolicyReports and Prometheus samples.

PolicyReports follow ``wgpolicyk8s.io/v1alpha2`` (the kind Policy Reporter and similar tools
read): one report per cluster row, a ``fail``/``warn`` result per Gatekeeper violation (by the
constraint's enforcement), per secret finding, and one result for the EKS support state.

Prometheus samples keep label cardinality bounded: per-cluster series carry only
``repository``, ``env`` and ``cluster`` (at most :data:`MAX_CLUSTER_SERIES` clusters, the
most urgent first) plus a label from a fixed set (severity, support state).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from bot.domain.fleet.model import SEVERITIES

MAX_CLUSTER_SERIES = 2000
_SEVERITY = {"error": "high", "warning": "medium", "notice": "low"}
_RESULT = {"error": "fail", "warning": "warn", "notice": "warn"}
_NAME = re.compile(r"[^a-z0-9-]+")


def _k8s_name(text: str) -> str:
    name = _NAME.sub("-", text.lower()).strip("-")
    return name[:253].rstrip("-") or "cluster"


def _support_result(support: Mapping[str, Any], version: str | None) -> dict[str, Any]:
    state = support["state"]
    result = {"standard": "pass", "extended": "warn", "unsupported": "fail"}.get(state, "skip")
    days = support.get("standard_days")
    message = {
        "standard": f"Kubernetes {version} is in EKS standard support ({days} days left)",
        "extended": f"Kubernetes {version} is in EKS extended support until {support.get('extended_end')}",
        "unsupported": f"Kubernetes {version} is out of EKS support",
    }.get(state, f"the Kubernetes version ({version or 'not set'}) is not in the EKS calendar")
    return {
        "source": "gitops-bot",
        "policy": "eks-version-support",
        "rule": "eks-calendar",
        "result": result,
        "severity": "high" if result == "fail" else "medium" if result == "warn" else "info",
        "message": message,
        "category": "EKS",
    }


def policy_report(row: Mapping[str, Any], timestamp: int) -> dict[str, Any]:
    """Return the PolicyReport of one cluster row."""
    results: list[dict[str, Any]] = [_support_result(row["support"], row["version"])]
    ts = {"seconds": timestamp, "nanos": 0}
    for v in row["policy"]["objects"]:
        kind, _, rule = v["constraint"].partition("/")
        ref = {"apiVersion": v["api_version"], "kind": v["kind"], "name": v["name"]}
        if v["namespace"]:
            ref["namespace"] = v["namespace"]
        results.append(
            {
                "source": "gatekeeper",
                "policy": kind,
                "rule": rule or kind,
                "result": _RESULT.get(v["severity"], "warn"),
                "severity": _SEVERITY.get(v["severity"], "low"),
                "message": v["message"],
                "category": "Gatekeeper",
                "resources": [ref],
                "properties": {"path": v["path"]},
            }
        )
    for s in row["secrets"]:
        results.append(
            {
                "source": "gitops-bot",
                "policy": "secret-hygiene",
                "rule": s["rule"],
                "result": "fail",
                "severity": "high",
                "message": s["message"],
                "category": "Secrets",
                "properties": {"path": s["path"], "line": str(s["line"])},
            }
        )
    for r in results:
        r["timestamp"] = ts
        r["scored"] = True
    summary = {
        k: sum(1 for r in results if r["result"] == k) for k in ("pass", "fail", "warn", "error", "skip")
    }
    return {
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {
            "name": _k8s_name(f"gitops-bot-{row['cluster']}-{row['env']}"),
            "namespace": "gitops-bot",
            "labels": {"app.kubernetes.io/managed-by": "gitops-bot"},
            "annotations": {
                "gitops-bot/repository": row["repo"],
                "gitops-bot/branch": row["branch"],
                "gitops-bot/cluster": row["cluster"],
            },
        },
        "scope": {"apiVersion": "v1", "kind": "Namespace", "name": "gitops-bot"},
        "summary": summary,
        "results": results,
    }


def policy_reports(fleet: Mapping[str, Any], timestamp: int) -> list[dict[str, Any]]:
    """Return one PolicyReport per cluster row of ``fleet``."""
    return [policy_report(row, timestamp) for row in fleet["clusters"]]


def gauge_samples(fleet: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, str], float]]:
    """Yield ``(metric, labels, value)`` for the fleet gauges (bounded labels, see module doc)."""
    rows = fleet["clusters"][:MAX_CLUSTER_SERIES]
    for row in rows:
        base = {"repository": row["repo"], "env": row["env"], "cluster": row["cluster"]}
        days = row["support"].get("standard_days")
        if days is not None:
            yield "gitops_bot_cluster_support_days", base | {"support": "standard"}, float(days)
        ext = row["support"].get("extended_days")
        if ext is not None:
            yield "gitops_bot_cluster_support_days", base | {"support": "extended"}, float(ext)
        for sev in SEVERITIES:
            yield (
                "gitops_bot_cluster_policy_violations",
                base | {"severity": sev},
                float(row["policy"]["by_severity"][sev]),
            )
        yield "gitops_bot_cluster_needs_action", base, 1.0 if row["needs_action"] else 0.0
    for env in fleet["environments"]:
        labels = {"repository": env["repo"], "env": env["env"]}
        yield "gitops_bot_env_pending_promotions", labels, float(env["pending_commits"])
    for state, n in fleet["counts"]["support"].items():
        yield "gitops_bot_fleet_clusters", {"support": state}, float(n)
