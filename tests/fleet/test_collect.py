"""Fleet facts from a real clone of examples/fleet (real git, real kustomize, real Gatekeeper)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.__main__ import main
from tests.support.gitrepo import GitRepo, tree_repo

EXAMPLE = Path(__file__).parents[2] / "examples" / "fleet"


def _git(repo: Path, *args: str) -> None:
    GitRepo.open(repo).git(*args)


@pytest.fixture(scope="module")
def fleet_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("fleet")
    tree_repo(repo, source=EXAMPLE)
    for env in ("dev", "staging", "prod"):
        _git(repo, "branch", f"env/{env}")
    # a change on dev that staging does not have yet: a Secret carrying data, a Namespace without owner
    secret = repo / "clusters" / "dev" / "dev-use1" / "flux" / "db.yaml"
    secret.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: flux-system\n"
        "stringData:\n  password: hunter2\n"
        "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: payments\n"  # no owner label
    )
    _git(repo, "checkout", "-q", "env/dev")
    GitRepo.open(repo).commit({}, "db secret")
    _git(repo, "checkout", "-q", "main")
    return repo


@pytest.mark.slow
def test_dashboard_json_and_html(
    fleet_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboard", "--repo", str(fleet_repo), "--json"]) == 0
    fleet = json.loads(capsys.readouterr().out)
    rows = {r["cluster"]: r for r in fleet["clusters"]}
    # each environment branch shows its own environment's clusters, as the renderer attributes them
    assert set(rows) == {"dev-use1", "staging-use1", "staging-euw1", "prod-use1", "prod-euw1"}
    assert rows["prod-euw1"]["region"] == "eu-west-1" and rows["prod-euw1"]["version"] == "1.34"
    assert rows["dev-use1"]["apps"] > 0 and rows["dev-use1"]["branch"] == "env/dev"
    assert rows["dev-use1"]["secrets"] and "password" in rows["dev-use1"]["secrets"][0]["message"]
    assert "hunter2" not in json.dumps(fleet)
    # Gatekeeper on the cluster's rendered objects, attributed to that cluster only
    assert rows["dev-use1"]["policy"]["by_constraint"] == {"K8sRequiredLabels/namespaces-must-have-owner": 1}
    assert rows["dev-use1"]["policy"]["objects"][0]["name"] == "payments"
    assert rows["staging-use1"]["policy"]["total"] == 0
    envs = {e["env"]: e for e in fleet["environments"]}
    assert envs["dev"]["pending_commits"] == 1 and envs["dev"]["next_env"] == "staging"
    out = tmp_path / "fleet.html"
    assert main(["dashboard", "--repo", str(fleet_repo), "--out", str(out), "--branch", "env/prod"]) == 0
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "prod-euw1" in page and "dev-use1" not in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # no CDN


def test_dashboard_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "--repo", str(tmp_path)]) == 2
    assert "not a git repository" in capsys.readouterr().err


def test_addons_against_aws_latest_for_the_cluster_version() -> None:
    from bot.fleet.collect import _addons

    objects = [
        {
            "apiVersion": "eks.aws.crossplane.io/v1alpha1",
            "kind": "Addon",
            "spec": {"forProvider": {"addonName": "coredns", "addonVersion": "v1.11.4-eksbuild.2"}},
        },
        {
            "apiVersion": "eks.services.k8s.aws/v1alpha1",
            "kind": "Addon",
            "spec": {"name": "kube-proxy", "addonVersion": "v1.34.6-eksbuild.2"},
        },
        {"apiVersion": "eks.services.k8s.aws/v1alpha1", "kind": "Addon", "spec": {"name": "vpc-cni"}},
        {"apiVersion": "v1", "kind": "Addon", "spec": {"name": "not-eks", "addonVersion": "1"}},
    ]
    found = {a.name: a for a in _addons(objects, "1.34")}
    assert set(found) == {"coredns", "kube-proxy"}
    assert found["coredns"].recommended == "v1.13.2-eksbuild.4"  # behind
    assert found["kube-proxy"].recommended == found["kube-proxy"].version  # current
    assert all(a.recommended is None for a in _addons(objects, None))


def test_addons_of_every_eks_addon_kind_and_the_one_table() -> None:
    """Crossplane (community, Upbound) and ACK add-ons; recommendations from the upgrade planner's table."""
    from bot.domain.upgrades.tables import ADDON_VERSIONS
    from bot.fleet.collect import _addons

    def upbound(name: str, version: str) -> dict[str, object]:
        return {
            "apiVersion": "eks.aws.upbound.io/v1beta1",
            "kind": "Addon",
            "spec": {"forProvider": {"addonName": name, "addonVersion": version, "clusterName": "c"}},
        }

    found = {
        a.name: a
        for a in _addons(
            [upbound("vpc-cni", "v1.20.1-eksbuild.3"), upbound("coredns", "v1.11.4-eksbuild.2")], "1.33"
        )
    }
    assert found["coredns"].recommended == ADDON_VERSIONS["coredns"]["1.33"]
    assert found["vpc-cni"].recommended == ADDON_VERSIONS.get("vpc-cni", {}).get("1.33")
