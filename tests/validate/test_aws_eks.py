"""boto3 paths of bot.aws.eks, exercised with botocore's Stubber (no network)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import boto3
import pytest
from botocore.stub import Stubber

from bot.aws.eks import addon_versions, catalog_with_addons, clear_cache, online_catalog


@pytest.fixture
def eks() -> Iterator[tuple[object, Stubber]]:
    client = boto3.client("eks", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stubber:
        clear_cache()
        yield client, stubber
        clear_cache()


def _version(v: str, std: str, ext: str) -> dict[str, object]:
    return {
        "clusterVersion": v,
        "releaseDate": datetime(2026, 1, 27, tzinfo=UTC),
        "endOfStandardSupportDate": datetime.fromisoformat(std + "T00:00:00+00:00"),
        "endOfExtendedSupportDate": datetime.fromisoformat(ext + "T00:00:00+00:00"),
        "status": "STANDARD_SUPPORT",
    }


def test_online_catalog_paginates_and_caches(eks: tuple[object, Stubber]) -> None:
    client, stubber = eks
    stubber.add_response(
        "describe_cluster_versions",
        {"clusterVersions": [_version("1.36", "2027-07-01", "2028-07-01")], "nextToken": "t1"},
        {"includeAll": True},
    )
    stubber.add_response(
        "describe_cluster_versions",
        {"clusterVersions": [_version("1.35", "2027-03-27", "2028-03-27")]},
        {"includeAll": True, "nextToken": "t1"},
    )
    ticks = iter([0.0, 10.0])
    catalog = online_catalog(client, ttl=60, clock=lambda: next(ticks))
    assert catalog.source.startswith("EKS API")
    assert catalog.supported_standard(date(2026, 11, 21)) == ["1.36", "1.35"]
    again = online_catalog(client, ttl=60, clock=lambda: next(ticks))
    assert again is catalog
    stubber.assert_no_pending_responses()


def test_online_catalog_falls_back_to_bundled_on_errors(eks: tuple[object, Stubber]) -> None:
    client, stubber = eks
    stubber.add_client_error("describe_cluster_versions", "AccessDeniedException", "no", http_status_code=403)
    catalog = online_catalog(client)
    assert catalog.source == "bundled calendar (AWS unavailable)"
    assert "1.34" in catalog.versions


def test_addon_versions_filters_by_compatibility(eks: tuple[object, Stubber]) -> None:
    client, stubber = eks
    stubber.add_response(
        "describe_addon_versions",
        {
            "addons": [
                {
                    "addonName": "vpc-cni",
                    "addonVersions": [
                        {
                            "addonVersion": "v1.20.4-eksbuild.1",
                            "compatibilities": [{"clusterVersion": "1.34"}],
                        },
                        {
                            "addonVersion": "v1.15.0-eksbuild.2",
                            "compatibilities": [{"clusterVersion": "1.28"}],
                        },
                    ],
                }
            ]
        },
        {"kubernetesVersion": "1.34", "addonName": "vpc-cni"},
    )
    assert addon_versions(client, "1.34", addon_names=["vpc-cni"]) == {
        ("vpc-cni", "1.34"): frozenset({"v1.20.4-eksbuild.1"})
    }


def test_catalog_with_addons_is_best_effort(eks: tuple[object, Stubber]) -> None:
    client, stubber = eks
    stubber.add_client_error("describe_addon_versions", "ThrottlingException", "slow down")
    from bot.domain.validate.eks import EksCatalog

    catalog = catalog_with_addons(client, EksCatalog.bundled(), ["1.34"], ["coredns"])
    assert catalog.addons == {}
