"""The fleet model: rows, support days, needs-action order, JSON round trip, access filter, exports."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import jsonschema
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from bot.domain.fleet import (
    Addon,
    ClusterFacts,
    EnvFacts,
    FleetFacts,
    MergedPR,
    SecretFinding,
    Violation,
    build_fleet,
    facts_from_json,
    facts_to_json,
)
from bot.domain.fleet.exports import MAX_CLUSTER_SERIES, gauge_samples, policy_reports
from bot.domain.fleet.model import only_repos
from bot.domain.validate.eks import EksCatalog
from bot.fleet.metrics import FleetCollector

TODAY = date(2026, 12, 3)
CRD = Path(__file__).parents[2] / "bot" / "fleet" / "data" / "wgpolicyk8s.io_policyreports.yaml"


def _facts() -> FleetFacts:
    bad = Violation(
        "K8sRequiredLabels/must-have-owner", "error", "Namespace", "", "checkout", "missing owner", "a.yaml"
    )
    warn = Violation(
        "K8sContainerLimits/limits", "warning", "Deployment", "web", "web", "no limits", "b.yaml"
    )
    return FleetFacts(
        clusters=[
            ClusterFacts("o/fleet", "env/prod", "prod", "prod-use1", "us-east-1", "1.35", apps=3),
            ClusterFacts(
                "o/fleet", "env/prod", "prod", "prod-old", "eu-west-1", "1.29", violations=(bad, warn)
            ),
            ClusterFacts(
                "o/fleet",
                "env/dev",
                "dev",
                "dev-use1",
                "us-east-1",
                "1.34",
                addons=(Addon("vpc-cni", "v1.18.0", "v1.19.2"), Addon("coredns", "v1.11.3", "v1.11.3")),
                secrets=(SecretFinding("secrets.plaintext", "s.yaml", 3, "Secret default/db carries data"),),
            ),
            ClusterFacts("o/other", "env/prod", "prod", "x-use1", "us-east-1", None, skipped=("x/app",)),
        ],
        envs=[
            EnvFacts(
                "o/fleet", "dev", "env/dev", "abc", health="failing", next_env="staging", pending_commits=4
            ),
            EnvFacts("o/fleet", "prod", "env/prod", "def", health="healthy"),
        ],
        merged=[
            MergedPR("o/fleet", 7, "Add cluster", "env/dev", "2026-11-30T10:00:00Z", True, True),
            MergedPR(
                "o/fleet", 8, "Hotfix", "env/prod", "2026-12-01T10:00:00Z", False, True, ("gitops-bot",)
            ),
            MergedPR("o/fleet", 2, "Old", "env/dev", "2026-09-01T10:00:00Z", True, True),
        ],
    )


def test_rows_support_days_and_needs_action_first() -> None:
    fleet = build_fleet(_facts(), EksCatalog.bundled(), TODAY)
    rows = {r["cluster"]: r for r in fleet["clusters"]}
    old = rows["prod-old"]
    assert old["support"]["state"] == "unsupported"
    assert old["policy"]["by_severity"] == {"error": 1, "warning": 1, "notice": 0}
    assert old["policy"]["by_constraint"] == {
        "K8sContainerLimits/limits": 1,
        "K8sRequiredLabels/must-have-owner": 1,
    }
    assert old["needs_action"][0] == "Kubernetes version out of EKS support"
    ok = rows["prod-use1"]
    # 1.35 standard support ends 2027-03-27: 114 days after 2026-12-03
    assert ok["support"]["standard_days"] == 114 and ok["support"]["extended_days"] == 480
    assert ok["needs_action"] == [] and ok["state"] == "ok" and ok["health"] == "healthy"
    dev = rows["dev-use1"]
    assert dev["addons_behind"] == 1 and dev["health"] == "failing" and dev["pending_commits"] == 4
    assert "health signals failing" in dev["needs_action"] and "1 secret findings" in dev["needs_action"]
    assert rows["x-use1"]["support"]["state"] == "unknown"
    assert rows["x-use1"]["needs_action"] == ["1 targets not rendered"]
    order = [r["cluster"] for r in fleet["clusters"]]
    assert order[-1] == "prod-use1" and order[0] in {"prod-old", "dev-use1"}
    assert fleet["counts"] == {
        "clusters": 4,
        "needs_action": 3,
        "support": {"extended": 1, "standard": 1, "unknown": 1, "unsupported": 1},
        "violations": {"error": 1, "warning": 1, "notice": 0},
        "secrets": 1,
        "pending_commits": 4,
        "held": 0,
        "frozen": 0,
    }


def test_governance_window_and_bypasses() -> None:
    gov = build_fleet(_facts(), EksCatalog.bundled(), TODAY)["governance"]
    assert gov["o/fleet"]["merged"] == 2  # #2 is older than 30 days
    assert gov["o/fleet"]["signed_and_approved"] == 1
    assert [b["number"] for b in gov["o/fleet"]["bypasses"]] == [8]
    assert gov["o/fleet"]["bypasses"][0]["failing"] == ["gitops-bot"]


def test_json_round_trip_and_access_filter() -> None:
    facts = _facts()
    again = facts_from_json(json.loads(json.dumps(facts_to_json(facts))))
    assert again == facts
    fleet = build_fleet(facts, EksCatalog.bundled(), TODAY)
    mine = only_repos(fleet, ["o/other"])
    assert [r["repo"] for r in mine["clusters"]] == ["o/other"]
    assert mine["environments"] == [] and mine["governance"] == {}
    assert mine["counts"]["clusters"] == 1 and mine["filters"]["repo"] == ["o/other"]
    assert only_repos(fleet, [])["clusters"] == []


def _crd_schema() -> dict:
    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha2")
    return version["schema"]["openAPIV3Schema"]


def test_policy_reports_are_valid_v1alpha2() -> None:
    fleet = build_fleet(_facts(), EksCatalog.bundled(), TODAY)
    reports = policy_reports(fleet, 1_780_000_000)
    schema = _crd_schema()
    for report in reports:
        jsonschema.validate(report, schema)
        assert report["apiVersion"] == "wgpolicyk8s.io/v1alpha2" and report["kind"] == "PolicyReport"
    old = next(r for r in reports if r["metadata"]["annotations"]["gitops-bot/cluster"] == "prod-old")
    assert old["summary"] == {"pass": 0, "fail": 2, "warn": 1, "error": 0, "skip": 0}
    gk = [r for r in old["results"] if r["source"] == "gatekeeper"]
    assert {(r["policy"], r["rule"], r["result"]) for r in gk} == {
        ("K8sRequiredLabels", "must-have-owner", "fail"),
        ("K8sContainerLimits", "limits", "warn"),
    }
    assert gk[0]["resources"][0]["kind"] in {"Namespace", "Deployment"}
    # a report that breaks the CRD is caught by the schema (the check is not vacuous)
    broken = dict(reports[0], results=[{"policy": "p", "result": "maybe"}])
    try:
        jsonschema.validate(broken, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("an invalid result value passed the CRD schema")


def test_metrics_bounded_labels() -> None:
    fleet = build_fleet(_facts(), EksCatalog.bundled(), TODAY)
    registry = CollectorRegistry()
    collector = FleetCollector()
    registry.register(collector)
    assert b"gitops_bot_cluster_support_days{" not in generate_latest(registry)  # nothing before data
    collector.update(fleet)
    text = generate_latest(registry).decode()
    assert (
        'gitops_bot_cluster_support_days{cluster="prod-use1",env="prod",repository="o/fleet",'
        'support="standard"} 114.0' in text
    )
    assert (
        'gitops_bot_cluster_policy_violations{cluster="prod-old",env="prod",repository="o/fleet",'
        'severity="error"} 1.0' in text
    )
    assert 'gitops_bot_env_pending_promotions{env="dev",repository="o/fleet"} 4.0' in text
    assert 'gitops_bot_fleet_clusters{support="unsupported"} 1.0' in text
    labels = {tuple(sorted(labels)) for _, labels, _ in gauge_samples(fleet)}
    assert all(set(k) <= {"repository", "env", "cluster", "support", "severity"} for k in labels)


def test_metrics_cap_cluster_series() -> None:
    facts = FleetFacts(
        clusters=[
            ClusterFacts("o/r", "env/dev", "dev", f"c{i}", "us-east-1", "1.35")
            for i in range(MAX_CLUSTER_SERIES + 5)
        ]
    )
    fleet = build_fleet(facts, EksCatalog.bundled(), TODAY)
    clusters = {labels["cluster"] for _, labels, _ in gauge_samples(fleet) if "cluster" in labels}
    assert len(clusters) == MAX_CLUSTER_SERIES


def test_summary_lines_say_what_the_page_shows() -> None:
    from bot.domain.fleet.model import summary_lines

    lines = summary_lines(build_fleet(_facts(), EksCatalog.bundled(), TODAY))
    assert lines[0] == "4 clusters on 2 environment branches; 3 need action."
    assert "1 unsupported" in lines[1] and "Policy: 1 violations, 1 warnings" in lines[1]
    assert any(
        "needs action: prod-old (prod): Kubernetes version out of EKS support" in line for line in lines
    )
    assert any(
        line.strip().startswith("dev: health failing, 4 commits waiting for staging") for line in lines
    )
    assert lines[-1].startswith("Governance (o/fleet, 30 days): 2 merged, 1 signed and approved, 1 merged")


def test_holds_and_freezes_per_environment_and_cluster() -> None:
    """Holds (the bot's records) and freezes (configuration) show on the environment and its clusters."""
    from datetime import UTC, datetime

    from bot.domain.fleet.model import summary_lines

    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    holiday = {"start": "2026-12-01", "end": "2027-01-04", "reason": "Holidays"}
    facts = FleetFacts(
        clusters=[
            ClusterFacts("o/fleet", "env/prod", "prod", "prod-a", "us-east-1", "1.35"),
            ClusterFacts("o/fleet", "env/staging", "staging", "stg-a", "us-east-1", "1.35"),
            ClusterFacts("o/fleet", "env/dev", "dev", "dev-a", "us-east-1", "1.35"),
            ClusterFacts("o/fleet", "env/dev", "dev", "dev-b", "us-east-1", "1.33"),
            ClusterFacts("o/fleet", "env/qa", "qa", "qa-a", "us-east-1", "1.35"),
        ],
        envs=[
            EnvFacts("o/fleet", "prod", "env/prod", holds=({"number": 12, "title": "Promote to prod"},)),
            EnvFacts("o/fleet", "staging", "env/staging", freeze=(holiday,)),
            EnvFacts("o/fleet", "qa", "env/qa", freeze=({"schedule": "not cron"},)),
            # dev is frozen past the end of 1.35's standard support (2027-03-27)
            EnvFacts(
                "o/fleet",
                "dev",
                "env/dev",
                freeze=({"start": "2026-11-01", "end": "2027-04-30", "reason": "Migration"},),
            ),
        ],
    )
    fleet = build_fleet(facts, EksCatalog.bundled(), TODAY, now)
    rows = {r["cluster"]: r for r in fleet["clusters"]}
    envs = {e["env"]: e for e in fleet["environments"]}
    # a hold needs someone to release it
    assert rows["prod-a"]["holds"] == [{"number": 12, "title": "Promote to prod"}]
    assert rows["prod-a"]["needs_action"] == ["promotion #12 into prod held (`/unhold` releases)"]
    # a plain freeze is shown, needs no action, and orders the row after unfrozen ones
    assert rows["stg-a"]["frozen"] == envs["staging"]["frozen"]
    assert envs["staging"]["frozen"]["reason"] == "Holidays"
    assert envs["staging"]["frozen"]["until"].startswith("2027-01-05")  # a date-only end includes the day
    assert rows["stg-a"]["needs_action"] == [] and rows["stg-a"]["state"] == "ok"
    # an unreadable window is a finding (the promotion gate fails on it too), never "not frozen"
    assert envs["qa"]["frozen"]["error"]
    assert rows["qa-a"]["needs_action"][0].startswith("freeze window unreadable")
    # a freeze lasting past the end of support: the upgrade cannot land in time
    assert rows["dev-a"]["needs_action"] == [
        "frozen until 2027-05-01, after standard support ends (2027-03-27)"
    ]
    # 1.33's extended support ends after the freeze: only the extended support itself is a reason
    assert rows["dev-b"]["needs_action"] == ["in extended support (extra cost)"]
    assert rows["dev-b"]["frozen"]["reason"] == "Migration"
    order = [r["cluster"] for r in fleet["clusters"]]
    assert order.index("prod-a") < order.index("stg-a")  # held (action) before frozen and ok
    assert order.index("qa-a") < order.index("prod-a")  # a broken freeze window before a hold
    assert fleet["counts"]["held"] == 1 and fleet["counts"]["frozen"] == 3
    # unfrozen at another time; stored facts round-trip; an older store's "frozen" field is ignored
    later = build_fleet(facts, EksCatalog.bundled(), date(2027, 2, 1), datetime(2027, 2, 1, tzinfo=UTC))
    assert {e["env"]: e["frozen"] for e in later["environments"]}["staging"] is None
    stored = facts_to_json(facts)
    stored["envs"][0]["frozen"] = ""
    assert facts_from_json(stored) == facts
    lines = "\n".join(summary_lines(fleet))
    assert "#12 held" in lines and "frozen until 2027-01-05" in lines and "(Holidays)" in lines


def test_addons_behind_by_version_order_not_by_difference() -> None:
    from bot.domain.fleet.model import addon_behind

    assert addon_behind("v1.11.4-eksbuild.2", "v1.13.2-eksbuild.4")
    assert addon_behind("v1.34.6-eksbuild.1", "v1.34.6-eksbuild.2")  # an older build of the same version
    assert not addon_behind("v1.34.6-eksbuild.2", "v1.34.6-eksbuild.2")
    # newer than the bundled table (the table lags AWS): current, never a downgrade to recommend
    assert not addon_behind("v1.35.4-eksbuild.1", "v1.35.3-eksbuild.2")
    assert not addon_behind("v1.20.1-eksbuild.3", None)  # no bundled version: not judged
    assert addon_behind("latest", "v1.13.2-eksbuild.4")  # unreadable and different: shown
    facts = FleetFacts(
        clusters=[
            ClusterFacts(
                "o/fleet",
                "env/prod",
                "prod",
                "c",
                version="1.35",
                addons=(
                    Addon("kube-proxy", "v1.35.9-eksbuild.1", "v1.35.3-eksbuild.2"),
                    Addon("coredns", "v1.11.4-eksbuild.2", "v1.13.2-eksbuild.4"),
                    Addon("vpc-cni", "v1.20.1-eksbuild.3", None),
                ),
            )
        ]
    )
    row = build_fleet(facts, EksCatalog.bundled(), TODAY)["clusters"][0]
    assert row["addons_behind"] == 1
    assert [a["current"] for a in row["addons"]] == [True, False, True]
    assert "1 add-ons behind the recommended version" in row["needs_action"]
