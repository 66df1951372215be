"""boto3 paths of bot.aws.eks, exercised with botocore's Stubber (no network)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from bot.aws.eks import addon_versions, catalog_with_addons, clear_cache, online_catalog
from bot.domain.validate.eks import EksCatalog


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


def test_eks_online_checks_the_changed_add_ons_against_aws(
    eks: tuple[object, Stubber], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``eks.online: true`` in the base config: the PR checks ask AWS for the calendar (refused here:
    the bundled one stands) and for the versions of the add-on the change touches."""
    import json
    import textwrap

    from bot.aws import eks as eks_aws
    from bot.prchecks.build import build_check
    from tests.support.gitrepo import GitRepo
    from tests.validate.helpers import FLEET_CONFIG, crossplane_cluster

    client, stubber = eks
    config = {**FLEET_CONFIG, "eks": {"online": True}}
    addon = textwrap.dedent(
        """\
        apiVersion: eks.aws.crossplane.io/v1alpha1
        kind: Addon
        metadata: {name: vpc-cni}
        spec:
          forProvider:
            {region: eu-west-1, addonName: vpc-cni, addonVersion: VERSION, clusterName: payments-dev}
        """
    )
    cluster = textwrap.dedent(crossplane_cluster()) + "---\n"  # the add-on beside its cluster's request
    repo = GitRepo(tmp_path / "repo")
    base = repo.commit(
        {
            ".github/gitops-bot.yml": json.dumps(config),
            "clusters/dev/payments.yaml": cluster + addon.replace("VERSION", "v1.20.4-eksbuild.1"),
        }
    )
    head = repo.commit(
        {"clusters/dev/payments.yaml": cluster + addon.replace("VERSION", "v1.12.0-eksbuild.1")}
    )
    monkeypatch.setattr(eks_aws, "session_for", lambda cfg: client if eks_aws.online(cfg) else None)
    stubber.add_client_error("describe_cluster_versions", "AccessDeniedException", "no", http_status_code=403)
    today = date.today()
    alive = sorted(v.version for v in EksCatalog.bundled().versions.values() if today <= v.end_of_extended)
    for version in alive:
        compat = [{"clusterVersion": version, "defaultVersion": True}]
        stubber.add_response(
            "describe_addon_versions",
            {
                "addons": [
                    {
                        "addonName": "vpc-cni",
                        "addonVersions": [{"addonVersion": "v1.20.4-eksbuild.1", "compatibilities": compat}],
                    }
                ]
            },
            {"kubernetesVersion": version, "addonName": "vpc-cni"},
        )
    result = build_check(repo.path, base, head)
    addons = [f for f in result.report.findings if f.rule == "eks.addon"]
    assert [f.path for f in addons] == ["clusters/dev/payments.yaml"], result.report.findings
    assert "v1.12.0-eksbuild.1 is not offered for Kubernetes 1.34" in addons[0].message
    assert "v1.20.4-eksbuild.1" in addons[0].hint
    # offline (the default), the same change is not judged: the bundled table has no add-on versions
    offline = {**config, "eks": {"online": False}}
    repo.commit({".github/gitops-bot.yml": json.dumps(offline)})
    again = repo.commit(
        {"clusters/dev/payments.yaml": cluster + addon.replace("VERSION", "v1.13.0-eksbuild.1")}
    )
    assert not [
        f for f in build_check(repo.path, f"{again}~1", again).report.findings if f.rule == "eks.addon"
    ]
