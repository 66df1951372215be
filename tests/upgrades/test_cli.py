"""``gitops-bot upgrade plan`` on a git repository: a Crossplane cluster, node group, add-on, old APIs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.__main__ import main

CONFIG = """\
version: 1
clusters:
  - name: shop-prod
    env: prod
    region: us-east-1
    path: clusters/shop-prod
upgrades:
  blue_green:
    traffic:
      - path: platform/dns/shop.yaml
"""

CLUSTER = """\
apiVersion: eks.aws.crossplane.io/v1beta1
kind: Cluster
metadata:
  name: shop-prod
spec:
  forProvider:
    region: us-east-1
    version: "1.31"
    roleArn: arn:aws:iam::444444444444:role/eks
    resourcesVpcConfig:
      subnetIds: [subnet-a, subnet-b, subnet-c]
---
apiVersion: eks.aws.crossplane.io/v1alpha1
kind: NodeGroup
metadata:
  name: shop-prod-general
spec:
  forProvider:
    clusterName: shop-prod
    region: us-east-1
    version: "1.30"
    instanceTypes: [m6i.large]
    scalingConfig: {minSize: 3, maxSize: 9, desiredSize: 3}
---
apiVersion: eks.aws.crossplane.io/v1alpha1
kind: Addon
metadata:
  name: shop-prod-kube-proxy
spec:
  forProvider:
    addonName: kube-proxy
    addonVersion: v1.31.14-eksbuild.9
    clusterName: shop-prod
"""

APPS = """\
apiVersion: batch/v1beta1
kind: CronJob
metadata:
  name: nightly-report
  namespace: shop
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: report
              image: example/report:1.0
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: shop
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: web}
"""

FILES = {
    ".github/gitops-bot.yml": CONFIG,
    "clusters/shop-prod/cluster.yaml": CLUSTER,
    "clusters/shop-prod/apps/kustomization.yaml": "resources: [jobs.yaml]\n",
    "clusters/shop-prod/apps/jobs.yaml": APPS,
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["upgrade", "plan", "--today", "2026-12-03", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> Path:
    return make_repo(FILES)


def test_in_place_plan_as_json(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "--repo", str(repo), "--cluster", "shop-prod", "--to", "1.33", "--format", "json"
    )
    assert code == 0, err
    plan = json.loads(out)
    assert (plan["cluster"], plan["env"], plan["from"], plan["to"], plan["hops"]) == (
        "shop-prod",
        "prod",
        "1.31",
        "1.33",
        ["1.32", "1.33"],
    )
    assert plan["addons"] == [
        {
            "name": "kube-proxy",
            "from": "v1.31.14-eksbuild.9",
            "to": "v1.33.10-eksbuild.2",
            "path": "clusters/shop-prod/cluster.yaml",
            "line": 32,
        }
    ]
    assert plan["removed_apis"] == [
        {
            "apiVersion": "batch/v1beta1",
            "kind": "CronJob",
            "name": "nightly-report",
            "path": "clusters/shop-prod/apps/jobs.yaml",
            "line": 1,
            "removed_in": "1.25",
            "replacement": "batch/v1",
        }
    ]
    assert plan["nodegroups"] == [{"name": "shop-prod-general", "from": "1.30", "to": "1.33", "skew": 1}]
    assert [s["title"] for s in plan["steps"]] == [
        "Move 1 object(s) off APIs removed by 1.33",
        "Hop to 1.32 (control plane, then node groups, then add-ons)",
        "Hop to 1.33 (control plane, then node groups, then add-ons)",
    ]
    # The node group and the add-ons live in the cluster's file: each hop changes that file.
    assert plan["steps"][1]["files"] == ["clusters/shop-prod/cluster.yaml"]


def test_blue_green_markdown(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--repo", str(repo), "--cluster", "shop-prod", "--strategy", "blue-green")
    assert code == 0
    assert out.startswith(
        "### Upgrade plan: `shop-prod` (prod) 1.31 → 1.35, blue/green (new cluster `shop-prod-b`)"
    )
    assert "4. Shift traffic: shop-prod-b 10%, shop-prod 90%: `platform/dns/shop.yaml`" in out
    # the cluster's own folder (its apps) is copied for green and removed with blue's workloads
    create = next(line for line in out.splitlines() if line.startswith("2. Create shop-prod-b"))
    assert (
        "`clusters/shop-prod-b/apps/jobs.yaml`" in create and "`clusters/shop-prod-b/cluster.yaml`" in create
    )
    decommission = next(line for line in out.splitlines() if "Decommission shop-prod:" in line)
    assert "`clusters/shop-prod/apps/jobs.yaml`" in decommission
    assert "| `CronJob/nightly-report` | `batch/v1beta1` | 1.25 | `batch/v1` |" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cluster", "nope"], "no cluster request named 'nope'"),
        (["--cluster", "shop-prod", "--to", "1.29"], "cannot downgrade"),
        (["--cluster", "shop-prod", "--to", "2.0"], "not in the bundled calendar"),
    ],
)
def test_usage_errors_exit_2(
    repo: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "--repo", str(repo), *argv)
    assert code == 2 and out == ""
    assert message in err


def test_a_cluster_only_in_a_helm_values_file_is_pointed_at(
    make_repo: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """kro's eks-cluster-mgmt layout lists clusters in a chart's values; the planner reads request
    objects, and says where the name is instead of leaving a new user with "clusters: none"."""
    values = 'clusters:\n  workload-cluster1:\n    tenant: tenant1\n    k8sVersion: "1.32"\n'
    repo = make_repo({**FILES, "fleet/kro-values/tenants/tenant1/kro-clusters/values.yaml": values})
    code, out, err = run(capsys, "--repo", str(repo), "--cluster", "workload-cluster1")
    assert code == 2 and out == ""
    assert "no cluster request named 'workload-cluster1'" in err
    assert "fleet/kro-values/tenants/tenant1/kro-clusters/values.yaml:2" in err and "Helm values" in err
