"""The upgrade planner, table by table: hops, add-ons, removed APIs, node groups, steps, the calendar scan."""

from __future__ import annotations

from datetime import date

import pytest

from bot.domain.upgrades.markdown import plan_markdown
from bot.domain.upgrades.plan import (
    AddonFact,
    ClusterFacts,
    NodeGroupFact,
    ObjectFact,
    PlanError,
    UpgradeSettings,
    due_upgrades,
    green_name,
    hops_between,
    parse_target,
    plan_upgrade,
    removed_apis,
)
from bot.domain.validate.eks import EksCatalog

TODAY = date(2026, 12, 3)
CATALOG = EksCatalog.bundled()


def cluster(version: tuple[int, int] = (1, 32), **kw: object) -> ClusterFacts:
    base: dict[str, object] = {
        "name": "prod-use1",
        "env": "prod",
        "region": "us-east-1",
        "version": version,
        "path": "clusters/prod/prod-use1/cluster.yaml",
        "line": 9,
        "folder": "clusters/prod/prod-use1",
        "registry_path": ".github/gitops-bot.yml",
    }
    base.update(kw)
    return ClusterFacts(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "target", "strategy", "allow_jump", "hops"),
    [
        ((1, 29), (1, 32), "in-place", True, [(1, 30), (1, 31), (1, 32)]),
        ((1, 33), (1, 34), "in-place", True, [(1, 34)]),
        ((1, 34), (1, 34), "in-place", True, []),
        ((1, 29), (1, 32), "blue-green", True, [(1, 32)]),
        ((1, 29), (1, 32), "blue-green", False, [(1, 30), (1, 31), (1, 32)]),
        ((1, 32), (1, 31), "in-place", True, []),
    ],
)
def test_hops(
    current: tuple[int, int],
    target: tuple[int, int],
    strategy: str,
    allow_jump: bool,
    hops: list[tuple[int, int]],
) -> None:
    assert hops_between(current, target, strategy, allow_jump=allow_jump) == hops  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("blue", "green"),
    [("prod-use1-a", "prod-use1-b"), ("prod-use1-b", "prod-use1-a"), ("prod-use1", "prod-use1-b")],
)
def test_green_name_alternates(blue: str, green: str) -> None:
    assert green_name(blue) == green


def test_default_target_is_the_newest_in_standard_support() -> None:
    plan = plan_upgrade(cluster((1, 32)), CATALOG, TODAY)
    # On 2026-12-03, 1.34 ended standard support on 2026-12-02: 1.35 is the newest left.
    assert plan.to_version == (1, 35)
    assert plan.hops == [(1, 33), (1, 34), (1, 35)]
    assert [s.title for s in plan.steps] == [
        "Hop to 1.33 (control plane)",
        "Hop to 1.34 (control plane)",
        "Hop to 1.35 (control plane)",
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [("1.99", "not in the bundled calendar"), ("one", "not a Kubernetes minor version")],
)
def test_unknown_target_is_a_usage_error(raw: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_target(raw, CATALOG)


def test_downgrade_is_a_usage_error() -> None:
    with pytest.raises(PlanError, match="cannot downgrade"):
        plan_upgrade(cluster((1, 33)), CATALOG, TODAY, to=(1, 32))


def test_already_there_is_a_notice_and_no_steps() -> None:
    plan = plan_upgrade(cluster((1, 35)), CATALOG, TODAY, to=(1, 35))
    assert plan.steps == [] and plan.hops == []
    assert [(f.rule, f.severity.value) for f in plan.findings] == [("upgrade.current", "notice")]


def test_target_out_of_standard_support_is_a_warning() -> None:
    plan = plan_upgrade(cluster((1, 31)), CATALOG, TODAY, to=(1, 32))
    assert ("upgrade.support", "warning") in [(f.rule, f.severity.value) for f in plan.findings]


ADDONS = (
    AddonFact("coredns", "v1.11.4-eksbuild.33", "clusters/prod/prod-use1/addons.yaml", 12),
    AddonFact("kube-proxy", "v1.32.13-eksbuild.5", "clusters/prod/prod-use1/addons.yaml", 30),
    AddonFact("vpc-cni", "v1.20.4-eksbuild.1", "clusters/prod/prod-use1/addons.yaml", 48),
)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ((1, 33), [("coredns", "v1.13.2-eksbuild.4"), ("kube-proxy", "v1.33.10-eksbuild.2")]),
        ((1, 32), []),
        ((1, 35), [("coredns", "v1.13.2-eksbuild.4"), ("kube-proxy", "v1.35.3-eksbuild.2")]),
    ],
)
def test_addons_follow_the_table(target: tuple[int, int], expected: list[tuple[str, str]]) -> None:
    plan = plan_upgrade(cluster((1, 32), addons=ADDONS), CATALOG, TODAY, to=target)
    assert [(a.name, a.to_version) for a in plan.addons] == expected
    assert all(a.path.endswith("addons.yaml") for a in plan.addons)


def test_addons_from_an_online_table_win() -> None:
    table = {"vpc-cni": {"1.33": "v1.21.0-eksbuild.1"}}
    plan = plan_upgrade(cluster((1, 32), addons=ADDONS), CATALOG, TODAY, to=(1, 33), addon_table=table)
    assert [(a.name, a.from_version, a.to_version) for a in plan.addons] == [
        ("vpc-cni", "v1.20.4-eksbuild.1", "v1.21.0-eksbuild.1")
    ]


OBJECTS = (
    ObjectFact("batch/v1beta1", "CronJob", "nightly", "apps/jobs/cron.yaml", 1),
    ObjectFact("policy/v1beta1", "PodDisruptionBudget", "web", "apps/web/pdb.yaml", 4),
    ObjectFact("flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema", "fs", "infra/apf.yaml", 7),
    ObjectFact("batch/v1", "CronJob", "modern", "apps/jobs/cron.yaml", 20),
    ObjectFact("example.com/v1beta1", "CronJob", "custom", "apps/jobs/custom.yaml", 1),
)


@pytest.mark.parametrize(
    ("target", "names"),
    [
        ((1, 24), []),
        ((1, 25), ["nightly", "web"]),
        ((1, 31), ["nightly", "web"]),
        ((1, 32), ["fs", "nightly", "web"]),
    ],
)
def test_removed_apis_by_target(target: tuple[int, int], names: list[str]) -> None:
    assert sorted(r.obj.name for r in removed_apis(OBJECTS, target)) == names


def test_removed_api_json_has_file_line_and_replacement() -> None:
    plan = plan_upgrade(cluster((1, 31), objects=OBJECTS), CATALOG, TODAY, to=(1, 33))
    fs = next(r for r in plan.to_json()["removed_apis"] if r["kind"] == "FlowSchema")
    assert fs == {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1beta3",
        "kind": "FlowSchema",
        "name": "fs",
        "path": "infra/apf.yaml",
        "line": 7,
        "removed_in": "1.32",
        "replacement": "flowcontrol.apiserver.k8s.io/v1",
    }
    assert plan.steps[0].title == "Move 3 object(s) off APIs removed by 1.33"
    assert plan.steps[0].files == ("apps/jobs/cron.yaml", "apps/web/pdb.yaml", "infra/apf.yaml")
    assert {f.rule for f in plan.findings} >= {"upgrade.removed-api"}


def test_in_place_steps_per_hop_control_plane_then_nodes_then_addons() -> None:
    facts = cluster(
        (1, 32),
        nodegroups=(NodeGroupFact("general", (1, 32), "clusters/prod/prod-use1/nodegroups.yaml", 14),),
        addons=ADDONS,
    )
    plan = plan_upgrade(facts, CATALOG, TODAY, to=(1, 34))
    # one step (one PR) per hop, its parts in EKS's order
    assert [(s.kind, s.version, s.title) for s in plan.steps] == [
        ("hop", "1.33", "Hop to 1.33 (control plane, then node groups, then add-ons)"),
        ("hop", "1.34", "Hop to 1.34 (control plane, then node groups, then add-ons)"),
    ]
    assert plan.steps[0].files[:2] == (
        "clusters/prod/prod-use1/cluster.yaml",
        "clusters/prod/prod-use1/nodegroups.yaml",
    )
    assert [n.to_json() for n in plan.nodegroups] == [
        {"name": "general", "from": "1.32", "to": "1.34", "skew": 0}
    ]


@pytest.mark.parametrize(
    ("ack", "mode", "split"),
    [
        (False, "auto", False),  # Crossplane or kro retry a refused update: one PR per hop converges
        (True, "auto", True),  # ACK stops for good on it: a PR per part
        (True, "per-hop", False),
        (False, "per-part", True),
    ],
)
def test_ack_managed_node_groups_split_each_hop_into_a_pr_per_part(ack: bool, mode: str, split: bool) -> None:
    facts = cluster(
        (1, 32),
        nodegroups=(NodeGroupFact("general", (1, 32), "clusters/prod/prod-use1/nodegroups.yaml", 14, ack),),
        addons=ADDONS,
    )
    settings = UpgradeSettings(in_place_prs=mode)
    plan = plan_upgrade(facts, CATALOG, TODAY, to=(1, 34), settings=settings)
    if split:
        assert [(s.kind, s.version) for s in plan.steps] == [
            (kind, v) for v in ("1.33", "1.34") for kind in ("control-plane", "nodegroups", "addons")
        ]
    else:
        assert [s.kind for s in plan.steps] == ["hop", "hop"]
    notices = [f for f in plan.findings if f.rule == "upgrade.per-part"]
    assert len(notices) == (1 if split and mode == "auto" else 0)
    assert all("community#2957" in f.message and f.path == facts.path for f in notices)


def test_node_group_beyond_the_skew_is_a_warning_at_its_line() -> None:
    ng = NodeGroupFact("old", (1, 28), "clusters/prod/prod-use1/nodegroups.yaml", 30)
    plan = plan_upgrade(cluster((1, 32), nodegroups=(ng,)), CATALOG, TODAY, to=(1, 33))
    skew = [f for f in plan.findings if f.rule == "upgrade.skew"]
    assert [(f.path, f.line) for f in skew] == [("clusters/prod/prod-use1/nodegroups.yaml", 30)]
    assert "4 minors behind" in skew[0].message


def test_blue_green_steps_and_files() -> None:
    settings = UpgradeSettings(traffic_steps=(25, 100), traffic_files=("platform/dns/records.yaml",))
    flux = "clusters/prod/prod-use1/flux/sync.yaml"  # its own folder: copied for green, removed with blue
    plan = plan_upgrade(
        cluster((1, 30), folder_files=(flux,)),
        CATALOG,
        TODAY,
        to=(1, 35),
        strategy="blue-green",
        settings=settings,
    )
    assert plan.hops == [(1, 35)] and plan.green == "prod-use1-b"
    dns = "platform/dns/records.yaml"
    assert [(s.kind, s.files) for s in plan.steps] == [
        (
            "create-green",
            (
                "clusters/prod/prod-use1-b/cluster.yaml",
                "clusters/prod/prod-use1-b/flux/sync.yaml",
                ".github/gitops-bot.yml",
                dns,
            ),
        ),
        ("smoke", ()),
        ("traffic", (dns,)),
        ("traffic", (dns,)),
        ("decommission-workloads", (dns, ".github/gitops-bot.yml", flux)),
        ("decommission-cluster", ("clusters/prod/prod-use1/cluster.yaml",)),
    ]
    assert plan.steps[2].title == "Shift traffic: prod-use1-b 25%, prod-use1 75%"
    assert not [f for f in plan.findings if f.rule == "upgrade.no-traffic"]
    bare = plan_upgrade(cluster((1, 30)), CATALOG, TODAY, to=(1, 35), strategy="blue-green")
    [warning] = [f for f in bare.findings if f.rule == "upgrade.no-traffic"]
    assert warning.path == ".github/gitops-bot.yml" and "upgrades.blue_green.traffic" in warning.message


def test_settings_from_config() -> None:
    settings = UpgradeSettings.from_config(
        {
            "upgrades": {
                "lead_time": "60d",
                "blue_green": {
                    "allow_jump": False,
                    "suffixes": ["-blue", "-green"],
                    "steps": [5, 100],
                    "traffic": [{"path": "b.yaml"}, {"path": "a.yaml"}],
                },
            }
        }
    )
    assert settings == UpgradeSettings(60, False, (5, 100), ("-blue", "-green"), ("a.yaml", "b.yaml"))
    assert UpgradeSettings.from_config({}) == UpgradeSettings()


def test_json_keys() -> None:
    data = plan_upgrade(cluster((1, 33)), CATALOG, TODAY).to_json()
    assert set(data) >= {
        "cluster",
        "env",
        "from",
        "to",
        "strategy",
        "hops",
        "addons",
        "removed_apis",
        "steps",
        "findings",
    }
    assert (data["from"], data["to"], data["hops"]) == ("1.33", "1.35", ["1.34", "1.35"])


def test_markdown_shows_hops_tables_and_steps() -> None:
    facts = cluster((1, 31), addons=ADDONS, objects=OBJECTS)
    text = plan_markdown(plan_upgrade(facts, CATALOG, TODAY, to=(1, 33)))
    assert text.startswith("### Upgrade plan: `prod-use1` (prod) 1.31 → 1.33, in place\n")
    assert "**Hops:** 1.31 → 1.32 → 1.33 (2;" in text
    assert (
        "| `kube-proxy` | `v1.32.13-eksbuild.5` | `v1.33.10-eksbuild.2` "
        "| `clusters/prod/prod-use1/addons.yaml:30` |" in text
    )
    assert (
        "| `FlowSchema/fs` | `flowcontrol.apiserver.k8s.io/v1beta3` | 1.32 "
        "| `flowcontrol.apiserver.k8s.io/v1` | `infra/apf.yaml:7` |" in text
    )
    assert "1. Move 3 object(s) off APIs removed by 1.33: `apps/jobs/cron.yaml`" in text


def test_markdown_cannot_be_broken_by_names() -> None:
    text = plan_markdown(plan_upgrade(cluster((1, 33), name="x`<b>@team"), CATALOG, TODAY))
    assert "``x`<b>@team``" in text


@pytest.mark.parametrize(
    ("version", "lead", "due"),
    [
        ((1, 34), 90, True),  # standard support ended 2026-12-02
        ((1, 33), 90, True),  # ended 2026-07-29: overdue
        ((1, 35), 90, False),  # newest in standard support
        ((1, 35), 500, False),  # nothing newer to go to
        ((1, 36), 90, False),  # newer than the calendar
    ],
)
def test_due_upgrades(version: tuple[int, int], lead: int, due: bool) -> None:
    got = due_upgrades([cluster(version)], CATALOG, TODAY, lead)
    assert bool(got) is due
    if due:
        assert got[0].target == (1, 35) and got[0].days_left < 0


def test_due_upgrades_within_lead_time_sorted_soonest_first() -> None:
    later = date(2026, 1, 10)  # 1.32 ends 2026-03-23 (72 days), 1.33 2026-07-29 (200 days)
    got = due_upgrades(
        [cluster((1, 33), name="b"), cluster((1, 32), name="a"), cluster((1, 31), name="c")],
        CATALOG,
        later,
        90,
    )
    assert [(d.cluster, d.days_left) for d in got] == [("c", -45), ("a", 72)]
