"""Upgrade plans with AWS's add-on versions (``describe_addon_versions``), on botocore's Stubber."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bot.aws.eks import default_addon_versions, upgrade_addon_table
from bot.domain.upgrades.campaign import dump_state, load_state, start
from bot.domain.upgrades.markdown import plan_markdown
from bot.domain.upgrades.plan import AddonFact, ClusterFacts, UpgradeSettings
from bot.domain.upgrades.tables import ADDON_VERSIONS
from bot.domain.validate.eks import EksCatalog
from bot.upgrades.facts import plan_cluster

TODAY = date(2026, 12, 3)
FACTS = ClusterFacts(
    name="shop-a",
    env="prod",
    region="us-east-1",
    version=(1, 33),
    path="clusters/prod/shop-a/cluster.yaml",
    line=9,
    addons=(AddonFact("kube-proxy", "v1.33.10-eksbuild.2", "clusters/prod/shop-a/cluster.yaml", 20, True),),
)


@pytest.fixture
def eks() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("eks", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _versions(k8s: str, *found: tuple[str, bool]) -> dict[str, Any]:
    return {
        "addons": [
            {
                "addonName": "kube-proxy",
                "addonVersions": [
                    {
                        "addonVersion": v,
                        "compatibilities": [{"clusterVersion": k8s, "defaultVersion": default}],
                    }
                    for v, default in found
                ],
            }
        ]
    }


def _plan(client: Any, strategy: str) -> Any:
    return plan_cluster(
        FACTS,
        EksCatalog.bundled(),
        TODAY,
        to=(1, 35),
        strategy=strategy,
        settings=UpgradeSettings(),
        aws=client,  # type: ignore[arg-type]
    )


def test_the_default_version_wins_else_the_newest_compatible(eks: tuple[Any, Stubber]) -> None:
    client, stubber = eks
    stubber.add_response(
        "describe_addon_versions",
        _versions("1.34", ("v1.34.9-eksbuild.1", False), ("v1.34.5-eksbuild.3", True)),
        {"kubernetesVersion": "1.34", "addonName": "kube-proxy"},
    )
    stubber.add_response(
        "describe_addon_versions",
        _versions("1.35", ("v1.35.2-eksbuild.1", False), ("v1.35.10-eksbuild.1", False)),
        {"kubernetesVersion": "1.35", "addonName": "kube-proxy"},
    )
    found = default_addon_versions(client, ["1.34", "1.35"], ["kube-proxy"])
    assert found == {"kube-proxy": {"1.34": "v1.34.5-eksbuild.3", "1.35": "v1.35.10-eksbuild.1"}}


def test_the_in_place_plan_and_its_campaign_take_awss_versions(eks: tuple[Any, Stubber]) -> None:
    client, stubber = eks
    for k8s, version in (("1.34", "v1.34.5-eksbuild.3"), ("1.35", "v1.35.1-eksbuild.7")):
        stubber.add_response(
            "describe_addon_versions",
            _versions(k8s, (version, True)),
            {"kubernetesVersion": k8s, "addonName": "kube-proxy"},
        )
    plan = _plan(client, "in-place")
    assert [a.to_json()["to"] for a in plan.addons] == ["v1.35.1-eksbuild.7"]
    assert plan.addon_table == {"kube-proxy": {"1.34": "v1.34.5-eksbuild.3", "1.35": "v1.35.1-eksbuild.7"}}
    assert "Add-on versions from AWS (describe_addon_versions):" in plan_markdown(plan)
    assert not [f for f in plan.findings if f.rule == "upgrade.addons-bundled"]
    # the campaign keeps them in its state: each hop's step sets AWS's version, not the bundled one
    c = load_state(dump_state(start(plan)))
    assert c is not None
    table = c.addon_versions(ADDON_VERSIONS)
    assert table["kube-proxy"]["1.34"] == "v1.34.5-eksbuild.3" != ADDON_VERSIONS["kube-proxy"]["1.34"]


def test_aws_refusing_leaves_the_bundled_table_and_says_so(eks: tuple[Any, Stubber]) -> None:
    client, stubber = eks
    stubber.add_client_error("describe_addon_versions", "AccessDeniedException", "no", http_status_code=403)
    table, why = upgrade_addon_table(client, ["1.35"], ["kube-proxy"], ADDON_VERSIONS)
    assert why == "AccessDeniedException" and table == ADDON_VERSIONS
    stubber.add_client_error("describe_addon_versions", "AccessDeniedException", "no", http_status_code=403)
    plan = _plan(client, "blue-green")
    [notice] = [f for f in plan.findings if f.rule == "upgrade.addons-bundled"]
    assert "AccessDeniedException" in notice.message and notice.path == FACTS.path
    assert plan.addon_source == "the bundled table"
    assert plan.addon_table == {"kube-proxy": {"1.35": ADDON_VERSIONS["kube-proxy"]["1.35"]}}
