"""Rules 4-5: fleet rules from the config, and EKS versions (support, skew, upgrades, add-ons)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from bot.domain.model import Severity
from bot.domain.validate.eks import EksCatalog, EksVersion, parse_minor
from tests.validate.helpers import FLEET_CONFIG, crossplane_cluster, crossplane_nodegroup, rules, run

DEV = "clusters/dev/payments.yaml"


def _with(**fleet: object) -> dict[str, object]:
    return {**FLEET_CONFIG, "fleet": {**FLEET_CONFIG["fleet"], **fleet}}  # type: ignore[dict-item]


def test_clean_request_passes(tmp_path: Path) -> None:
    text = crossplane_cluster() + "---\n" + crossplane_nodegroup()
    assert run(tmp_path, {DEV: text}) == []


def test_name_pattern_and_uniqueness_across_the_fleet(tmp_path: Path) -> None:
    base = {"clusters/dev/existing.yaml": crossplane_cluster(name="payments-dev")}
    findings = run(
        tmp_path,
        {
            DEV: crossplane_cluster(name="payments-dev"),
            "clusters/dev/bad.yaml": crossplane_cluster(name="Bad_Name"),
        },
        base=base,
        changed=[DEV, "clusters/dev/bad.yaml"],
    )
    assert sorted(rules(findings)) == [("fleet.name", 4), ("fleet.unique", 4)]
    unique = next(f for f in findings if f.rule == "fleet.unique")
    assert unique.path == DEV and "clusters/dev/existing.yaml" in unique.message


def test_region_and_instance_type(tmp_path: Path) -> None:
    text = crossplane_cluster(region="ap-south-1") + "---\n" + crossplane_nodegroup(itype="p5.48xlarge")
    findings = run(tmp_path, {DEV: text})
    assert {f.rule for f in findings} == {"fleet.region", "fleet.instance-type"}
    assert "eu-west-1, us-east-1" in next(f for f in findings if f.rule == "fleet.region").hint


def test_bounds(tmp_path: Path) -> None:
    findings = run(tmp_path, {DEV: crossplane_nodegroup(sizes="5, 3, 4")})
    assert sorted(f.message for f in findings) == [
        "NodeGroup: desiredSize 4 is above maxSize 3",
        "NodeGroup: desiredSize 4 is below minSize 5",
        "NodeGroup: minSize 5 is greater than maxSize 3",
    ]
    findings = run(tmp_path / "2", {DEV: crossplane_nodegroup(sizes="2, 30, 1")})
    assert sorted(f.message for f in findings) == [
        "NodeGroup: desiredSize 1 is below minSize 2",
        "NodeGroup: maxSize 30 exceeds the dev environment's cap of 20 nodes",
    ]


def test_required_tags(tmp_path: Path) -> None:
    text = crossplane_cluster().replace("          cost-center: cc-1234\n", "")
    [finding] = run(tmp_path, {DEV: text})
    assert finding.rule == "fleet.tags" and "cost-center" in finding.message and finding.line == 12


def test_production_needs_three_subnets_in_distinct_zones(tmp_path: Path) -> None:
    prod = "clusters/prod/payments.yaml"
    two = crossplane_cluster(name="payments-prod", env="prod", subnets="[subnet-a, subnet-b]")
    findings = run(tmp_path, {prod: two})
    assert [f.rule for f in findings] == ["fleet.production"] and "at least 3 subnets" in findings[0].message
    same_zone = crossplane_cluster(name="payments-prod", env="prod", subnets="[subnet-a, subnet-b, subnet-d]")
    findings = run(tmp_path / "2", {prod: same_zone})
    assert [f.rule for f in findings] == ["fleet.production"] and "2 availability zone(s)" in findings[
        0
    ].message
    good = crossplane_cluster(name="payments-prod", env="prod", subnets="[subnet-a, subnet-b, subnet-c]")
    assert run(tmp_path / "3", {prod: good}) == []


def test_paths_outside_cluster_requests_are_not_requests(tmp_path: Path) -> None:
    assert run(tmp_path, {"apps/x.yaml": crossplane_nodegroup(itype="p5.48xlarge")}) == []


def test_kro_instance_with_configured_field_mapping(tmp_path: Path) -> None:
    config = {
        **FLEET_CONFIG,
        "cluster_requests": {
            "paths": ["clusters/**"],
            "kinds": [
                {
                    "apiVersion": "kro.run/*",
                    "kind": "EksCluster",
                    "role": "cluster",
                    "fields": {
                        "name": "spec.name",
                        "region": "spec.region",
                        "version": "spec.version",
                        "instance_types": "spec.nodes.instanceTypes",
                        "max_size": "spec.nodes.max",
                        "tags": "spec.tags",
                    },
                }
            ],
        },
    }
    text = """
    apiVersion: kro.run/v1alpha1
    kind: EksCluster
    metadata: {name: x}
    spec:
      name: shop-dev
      region: eu-west-1
      version: "1.34"
      nodes: {instanceTypes: [m6i.large], max: 25}
      tags: {team: shop, environment: dev, cost-center: cc-9}
    """
    findings = run(tmp_path, {DEV: text}, config=config)
    assert [(f.rule, f.severity) for f in findings if f.rule != "schema.unknown-kind"] == [
        ("fleet.scaling", Severity.ERROR)
    ]


# ---------------------------------------------------------------- EKS versions


def test_versions_by_support_status(tmp_path: Path) -> None:
    extended = run(tmp_path / "a", {DEV: crossplane_cluster(version='"1.31"')})
    assert [(f.rule, f.severity) for f in extended] == [("eks.version", Severity.ERROR)]
    assert "extended support" in extended[0].message and "2025-11-26" in extended[0].message
    config = {**FLEET_CONFIG, "eks": {"allow_extended_support": True}}
    allowed = run(tmp_path / "b", {DEV: crossplane_cluster(version='"1.31"')}, config=config)
    assert [(f.rule, f.severity) for f in allowed] == [("eks.version", Severity.WARNING)]
    newer = run(tmp_path / "c", {DEV: crossplane_cluster(version='"1.36"')})
    assert [(f.rule, f.severity) for f in newer] == [("eks.version", Severity.NOTICE)]
    as_float = run(tmp_path / "d", {DEV: crossplane_cluster(version="1.30")})
    assert "Quote it" in as_float[0].hint


def test_node_group_newer_than_control_plane(tmp_path: Path) -> None:
    text = crossplane_cluster(version='"1.34"') + "---\n" + crossplane_nodegroup(version='"1.35"')
    [finding] = run(tmp_path, {DEV: text})
    assert finding.rule == "eks.skew" and "1.35 is newer than its control plane 1.34" in finding.message


def test_upgrade_may_not_skip_a_minor_version(tmp_path: Path) -> None:
    base = {DEV: crossplane_cluster(version='"1.33"')}
    [finding] = run(tmp_path / "a", {DEV: crossplane_cluster(version='"1.35"')}, base=base)
    assert finding.rule == "eks.upgrade" and "1.34 first" in finding.hint
    assert run(tmp_path / "b", {DEV: crossplane_cluster(version='"1.34"')}, base=base) == []


def test_addon_versions_checked_when_catalog_knows_them(tmp_path: Path) -> None:
    addon = """
    apiVersion: eks.aws.crossplane.io/v1alpha1
    kind: Addon
    metadata: {name: vpc-cni}
    spec:
      forProvider:
        region: eu-west-1
        addonName: vpc-cni
        addonVersion: v1.12.0-eksbuild.1
        clusterName: payments-dev
    """
    catalog = EksCatalog.bundled()
    catalog.addons = {("vpc-cni", "1.34"): frozenset({"v1.20.4-eksbuild.1", "v1.19.0-eksbuild.1"})}
    findings = run(tmp_path, {DEV: crossplane_cluster(), "clusters/dev/addon.yaml": addon}, eks=catalog)
    assert [f.rule for f in findings] == ["eks.addon"]
    assert "v1.20.4-eksbuild.1" in findings[0].hint
    assert run(tmp_path / "2", {DEV: crossplane_cluster(), "clusters/dev/addon.yaml": addon}) == []


def test_catalog_lookups() -> None:
    catalog = EksCatalog.bundled()
    assert catalog.support((1, 34), date(2026, 11, 21)).status == "standard"
    assert catalog.support((1, 31), date(2026, 11, 21)).status == "extended"
    assert catalog.support((1, 29), date(2026, 11, 21)).status == "unsupported"
    assert catalog.support((1, 20), date(2026, 11, 21)).status == "unsupported"
    assert catalog.support((1, 40), date(2026, 11, 21)).status == "unknown"
    assert catalog.supported_standard(date(2026, 11, 21)) == ["1.35", "1.34"]
    custom = EksCatalog([EksVersion("1.40", None, date(2030, 1, 1), date(2031, 1, 1))], source="AWS")
    assert custom.newest() == "1.40"
    assert parse_minor("v1.29.3") == (1, 29) and parse_minor("latest") is None and parse_minor(True) is None


def test_invalid_name_pattern_in_config_is_reported(tmp_path: Path) -> None:
    findings = run(tmp_path, {DEV: crossplane_cluster()}, config=_with(name_pattern="(["))
    assert [f.rule for f in findings] == ["config"] and "not a valid regular expression" in findings[
        0
    ].message


def test_ack_nodegroup_and_cluster_builtin_mappings(tmp_path: Path) -> None:
    text = """
    apiVersion: eks.services.k8s.aws/v1alpha1
    kind: Cluster
    metadata:
      name: shop
      annotations: {services.k8s.aws/region: ap-south-1}
    spec:
      name: shop-dev
      version: "1.34"
      roleARN: arn:aws:iam::111111111111:role/eks
      resourcesVPCConfig: {subnetIDs: [subnet-a, subnet-b]}
      tags: {team: shop, environment: dev, cost-center: cc-1}
    ---
    apiVersion: eks.services.k8s.aws/v1alpha1
    kind: Nodegroup
    metadata: {name: shop-workers}
    spec:
      name: shop-workers
      clusterName: shop-dev
      version: "1.35"
      nodeRole: arn:aws:iam::111111111111:role/nodes
      subnets: [subnet-a]
      instanceTypes: [m6i.large]
      scalingConfig: {minSize: 1, maxSize: 3, desiredSize: 2}
      tags: {team: shop, environment: dev, cost-center: cc-1}
    """
    findings = run(tmp_path, {DEV: text})
    assert sorted((f.rule, f.line) for f in findings) == [("eks.skew", 19), ("fleet.region", 5)]


def test_cli_policy_without_subcommand_is_usage_error() -> None:
    from bot.__main__ import main

    assert main(["policy"]) == 2


def test_tags_given_by_a_kro_expression_are_not_reported_missing(tmp_path: Path) -> None:
    """An RGD template's ``tags: ${schema.spec.tags}`` is unknown until kro runs; a literal map is checked."""
    rgd = """
    apiVersion: kro.run/v1alpha1
    kind: ResourceGraphDefinition
    metadata: {name: cluster.kro.run}
    spec:
      schema:
        apiVersion: v1alpha1
        kind: FleetCluster
        spec: {name: string, tags: "map[string]string"}
      resources:
        - id: cluster
          template:
            apiVersion: eks.aws.crossplane.io/v1beta1
            kind: Cluster
            metadata: {name: "${schema.spec.name}"}
            spec:
              forProvider:
                region: eu-west-1
                tags: ${schema.spec.tags}
        - id: literal
          template:
            apiVersion: eks.aws.crossplane.io/v1beta1
            kind: Cluster
            metadata: {name: "${schema.spec.name}-b"}
            spec:
              forProvider:
                region: eu-west-1
                tags: {team: shop}
    """
    findings = [f for f in run(tmp_path, {DEV: rgd}) if f.rule == "fleet.tags"]
    assert [(f.line, "environment, cost-center" in f.message) for f in findings] == [(27, True)]


def test_envsubst_placeholders_are_not_judged_as_names_or_versions(tmp_path: Path) -> None:
    """ACK's e2e resources (``name: $CLUSTER_NAME``, ``version: $K8S_VERSION``) are filled in by envsubst."""
    template = """
    apiVersion: eks.services.k8s.aws/v1alpha1
    kind: Cluster
    metadata: {name: $CLUSTER_NAME}
    spec:
      name: $CLUSTER_NAME
      version: $K8S_VERSION
      roleARN: $CLUSTER_ROLE
    """
    other = "clusters/dev/other.yaml"
    findings = run(tmp_path, {DEV: template, other: template})
    assert [f for f in findings if f.rule in ("fleet.name", "fleet.unique", "eks.version")] == []
    literal = run(tmp_path / "literal", {DEV: template.replace("$K8S_VERSION", "1.2x")})
    assert [f.rule for f in literal if f.rule == "eks.version"] == ["eks.version"]


def test_one_reading_of_an_eks_addon_for_ack_and_every_crossplane_provider() -> None:
    from bot.domain.validate.fleet import eks_addon

    crossplane = {
        "kind": "Addon",
        "spec": {"forProvider": {"addonName": "coredns", "addonVersion": "v1", "clusterName": "c"}},
    }
    ack = {"kind": "Addon", "spec": {"name": "coredns", "addonVersion": "v1", "clusterName": "c"}}
    for group in ("eks.aws.crossplane.io", "eks.aws.upbound.io", "eks.aws.m.upbound.io"):
        found = eks_addon(group, "Addon", crossplane)
        assert found is not None and (found.name, found.version, found.cluster) == ("coredns", "v1", "c")
        assert found.at == ("spec", "forProvider", "addonVersion")
    found = eks_addon("eks.services.k8s.aws", "Addon", ack)
    assert found is not None and found.at == ("spec", "addonVersion") and found.cluster == "c"
    assert eks_addon("example.com", "Addon", ack) is None
    assert eks_addon("eks.services.k8s.aws", "Addon", {"spec": {"name": "coredns"}}) is None  # no version
