"""Upgrade step edits: versions, traffic weights per preset, green's copies, the registry; comments kept."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from bot.domain.upgrades.campaign import Campaign, CampaignStep
from bot.domain.upgrades.edits import (
    EditError,
    FieldRef,
    Targets,
    Traffic,
    add_argo_cluster,
    load_all,
    rollback_changes,
    set_field,
    set_weights,
    step_changes,
    step_parts,
)

REQUEST = """\
# The shop's production cluster.
apiVersion: eks.services.k8s.aws/v1alpha1
kind: Cluster
metadata:
  name: shop-a
spec:
  name: shop-a
  version: "1.33"  # bumped by upgrades
"""

DNS = """\
apiVersion: externaldns.k8s.io/v1alpha1
kind: DNSEndpoint
metadata:
  name: shop-a
  annotations:
    external-dns.alpha.kubernetes.io/set-identifier: shop-a
    external-dns.alpha.kubernetes.io/aws-weight: "100"
spec:
  endpoints:
    - dnsName: shop.example.com
      targets: [shop-a.lb.example.com]
"""

RECORDS = """\
apiVersion: route53.services.k8s.aws/v1alpha1
kind: RecordSet
metadata:
  name: shop-a
spec:
  name: shop
  setIdentifier: shop-a
  weight: 70
---
apiVersion: route53.services.k8s.aws/v1alpha1
kind: RecordSet
metadata:
  name: shop-b
spec:
  name: shop
  setIdentifier: shop-b
  weight: 30
"""

CONFIG = """\
version: 1
clusters:
  - name: shop-a  # blue
    env: prod
    path: clusters/prod/shop-a
"""

CAMPAIGN = Campaign("shop-a", "prod", "blue-green", "1.35", (), green="shop-b")
WHERE = Targets(
    request_path="clusters/prod/shop-a/cluster.yaml",
    control_plane=(FieldRef("clusters/prod/shop-a/cluster.yaml", 0, ("spec", "version")),),
    registry_path=".github/gitops-bot.yml",
    traffic=(Traffic("dns/shop.yaml"),),
)
FILES = {"clusters/prod/shop-a/cluster.yaml": REQUEST, "dns/shop.yaml": DNS, ".github/gitops-bot.yml": CONFIG}


def test_set_field_keeps_comments_and_quotes() -> None:
    out = set_field(REQUEST, 0, ("spec", "version"), "1.34")
    assert out == REQUEST.replace('"1.33"', '"1.34"')


def test_set_field_names_a_missing_field() -> None:
    with pytest.raises(EditError, match=r"spec\.nope"):
        set_field(REQUEST, 0, ("spec", "nope"), "x")


def test_control_plane_step_changes_only_the_version() -> None:
    changes = step_changes(CAMPAIGN, CampaignStep("control-plane", "t", "1.34"), WHERE, FILES)
    assert changes == {"clusters/prod/shop-a/cluster.yaml": REQUEST.replace('"1.33"', '"1.34"')}


NODES = """\
apiVersion: eks.services.k8s.aws/v1alpha1
kind: Nodegroup
metadata:
  name: shop-a-general
spec:
  clusterName: shop-a
  version: "1.33"
"""
ADDON = """\
apiVersion: eks.services.k8s.aws/v1alpha1
kind: Addon
metadata:
  name: shop-a-kube-proxy
spec:
  name: kube-proxy
  clusterName: shop-a
  addonVersion: v1.33.10-eksbuild.2
"""


def test_an_in_place_hop_is_one_change_in_three_commits_control_plane_nodes_addons() -> None:
    files = {**FILES, "clusters/prod/shop-a/nodes.yaml": NODES, "clusters/prod/shop-a/addons.yaml": ADDON}
    where = Targets(
        request_path=WHERE.request_path,
        control_plane=WHERE.control_plane,
        nodegroups=(
            FieldRef("clusters/prod/shop-a/nodes.yaml", 0, ("spec", "version")),
            # a node group written in the request's own file is bumped too
        ),
        addons={"kube-proxy": FieldRef("clusters/prod/shop-a/addons.yaml", 0, ("spec", "addonVersion"))},
        addon_versions={"kube-proxy": {"1.34": "v1.34.3-eksbuild.2"}},
    )
    hop = CampaignStep("hop", "Hop to 1.34 (control plane, then node groups, then add-ons)", "1.34")
    parts = step_parts(CAMPAIGN, hop, where, files)
    assert [subject for subject, _ in parts] == [
        "Control plane to 1.34",
        "Node groups to 1.34",
        "Add-ons for 1.34",
    ]
    # each commit holds everything so far, so the three apply one on the other
    assert [sorted(changes) for _, changes in parts] == [
        ["clusters/prod/shop-a/cluster.yaml"],
        ["clusters/prod/shop-a/cluster.yaml", "clusters/prod/shop-a/nodes.yaml"],
        [
            "clusters/prod/shop-a/addons.yaml",
            "clusters/prod/shop-a/cluster.yaml",
            "clusters/prod/shop-a/nodes.yaml",
        ],
    ]
    last = parts[-1][1]
    assert last["clusters/prod/shop-a/nodes.yaml"] == NODES.replace('"1.33"', '"1.34"')
    assert last["clusters/prod/shop-a/addons.yaml"] == ADDON.replace(
        "v1.33.10-eksbuild.2", "v1.34.3-eksbuild.2"
    )
    assert step_changes(CAMPAIGN, hop, where, files) == last
    # a part with nothing to change is left out; a hop already made has no commits at all
    bare = Targets(request_path=WHERE.request_path, control_plane=WHERE.control_plane)
    assert [s for s, _ in step_parts(CAMPAIGN, hop, bare, files)] == ["Control plane to 1.34"]
    done = {**files, WHERE.request_path: REQUEST.replace('"1.33"', '"1.34"')}
    assert step_parts(CAMPAIGN, hop, bare, done) == []


SYNC = (  # blue's Flux sync: what green must get a copy of
    "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: flux-system}\n"
    "spec: {path: ./clusters/prod/shop-a, sourceRef: {kind: GitRepository, name: flux-system}}\n"
)


def test_blues_own_folder_is_copied_for_green_and_removed_with_its_workloads() -> None:
    """A Flux cluster folder (clusters/prod/shop-a/...) is what the cluster runs: green gets a copy
    with the names replaced, so it receives the same add-ons and apps; the decommission removes it."""
    files = {**FILES, "clusters/prod/shop-a/flux/gotk-sync.yaml": SYNC}
    where = replace(
        WHERE, folder="clusters/prod/shop-a", folder_files=("clusters/prod/shop-a/flux/gotk-sync.yaml",)
    )
    created = step_changes(CAMPAIGN, CampaignStep("create-green", "t"), where, files)
    assert created["clusters/prod/shop-b/flux/gotk-sync.yaml"] == SYNC.replace("shop-a", "shop-b")
    assert "clusters/prod/shop-a/flux/gotk-sync.yaml" not in created  # blue's stays as it is
    gone = step_changes(CAMPAIGN, CampaignStep("decommission-workloads", "t"), where, files)
    assert gone["clusters/prod/shop-a/flux/gotk-sync.yaml"] is None
    assert WHERE.request_path not in gone  # the request goes in the last step, on its own


ARGO = """\
# Argo CD's registration of the shop's cluster: the ApplicationSets' cluster generator reads it.
apiVersion: v1
kind: Secret
metadata:
  name: shop-a
  namespace: argocd
  labels:
    argocd.argoproj.io/secret-type: cluster
    env: prod
stringData:
  name: shop-a
  server: https://shop-a.eks.example.internal
"""


def test_blues_argo_cd_cluster_secret_registers_green_and_goes_with_blues_workloads() -> None:
    files = {**FILES, "argocd/clusters.yaml": ARGO}
    where = replace(WHERE, argo_secrets=("argocd/clusters.yaml",))
    created = step_changes(CAMPAIGN, CampaignStep("create-green", "t"), where, files)
    docs = load_all(created["argocd/clusters.yaml"] or "")
    assert [(d["metadata"]["name"], d["stringData"]["server"]) for d in docs] == [
        ("shop-a", "https://shop-a.eks.example.internal"),
        ("shop-b", "https://shop-b.eks.example.internal"),
    ]
    assert docs[1]["metadata"]["labels"] == {"argocd.argoproj.io/secret-type": "cluster", "env": "prod"}
    assert (
        add_argo_cluster(created["argocd/clusters.yaml"] or "", "shop-a", "shop-b")
        == created["argocd/clusters.yaml"]
    )  # once there, never twice
    after = {**files, "argocd/clusters.yaml": created["argocd/clusters.yaml"] or ""}
    gone = step_changes(CAMPAIGN, CampaignStep("decommission-workloads", "t"), where, after)
    assert [d["metadata"]["name"] for d in load_all(gone["argocd/clusters.yaml"] or "")] == ["shop-b"]
    alone = step_changes(CAMPAIGN, CampaignStep("decommission-workloads", "t"), where, files)
    assert alone["argocd/clusters.yaml"] is None  # blue's was the file's only Secret: the file goes


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        (
            ARGO.replace(
                "https://shop-a.eks.example.internal", "https://0A1B2C3D.gr7.us-east-1.eks.amazonaws.com"
            ),
            "0A1B2C3D.gr7",
        ),
        (
            ARGO.replace(
                "stringData:\n  name: shop-a\n  server: https://shop-a.eks.example.internal\n",
                "data:\n  name: c2hvcC1h\n",
            ),
            "in data",
        ),
    ],
)
def test_a_cluster_secret_with_blues_endpoint_is_never_copied_to_green(secret: str, says: str) -> None:
    """An EKS endpoint is known only once the cluster exists: a copy would send green's apps to blue."""
    with pytest.raises(EditError, match=says):
        add_argo_cluster(secret, "shop-a", "shop-b")


def test_create_green_copies_request_registry_and_traffic_at_weight_0() -> None:
    changes = step_changes(CAMPAIGN, CampaignStep("create-green", "t"), WHERE, FILES)
    green = changes["clusters/prod/shop-b/cluster.yaml"]
    assert green is not None and "name: shop-b" in green and '"1.35"' in green
    config = changes[".github/gitops-bot.yml"]
    assert config is not None and [c["name"] for c in load_all(config)[0]["clusters"]] == ["shop-a", "shop-b"]
    dns = load_all(changes["dns/shop.yaml"] or "")
    weights = {
        d["metadata"]["name"]: d["metadata"]["annotations"]["external-dns.alpha.kubernetes.io/aws-weight"]
        for d in dns
    }
    assert weights == {"shop-a": "100", "shop-b": "0"}
    # Asked again on the result, it changes nothing (idempotent).
    again = {**FILES, **{k: v for k, v in changes.items() if v is not None}}
    assert "dns/shop.yaml" not in step_changes(CAMPAIGN, CampaignStep("create-green", "t"), WHERE, again)
    assert (
        set_weights(again["dns/shop.yaml"], Traffic("dns/shop.yaml"), {"shop-b": 0, "shop-a": 100})
        == again["dns/shop.yaml"]
    )


def test_create_green_puts_the_targets_addon_versions_in_greens_copy_only() -> None:
    addon = (
        "---\napiVersion: eks.services.k8s.aws/v1alpha1\nkind: Addon\nmetadata:\n  name: shop-a-kube-proxy\n"
        "spec:\n  name: kube-proxy\n  clusterName: shop-a\n  addonVersion: v1.33.10-eksbuild.2\n"
    )
    path = WHERE.request_path
    where = Targets(
        path,
        WHERE.control_plane,
        registry_path=WHERE.registry_path,
        addons={"kube-proxy": FieldRef(path, 1, ("spec", "addonVersion"))},
        addon_versions={"kube-proxy": {"1.34": "v1.34.6-eksbuild.2", "1.35": "v1.35.3-eksbuild.2"}},
    )
    changes = step_changes(
        CAMPAIGN, CampaignStep("create-green", "t"), where, {**FILES, path: REQUEST + addon}
    )
    green = load_all(changes["clusters/prod/shop-b/cluster.yaml"] or "")
    assert green[1]["spec"]["addonVersion"] == "v1.35.3-eksbuild.2"
    assert green[1]["spec"]["clusterName"] == "shop-b"
    assert path not in changes  # blue keeps its add-ons


def test_traffic_step_and_rollback_on_route53_recordsets() -> None:
    where = Targets(
        WHERE.request_path, WHERE.control_plane, traffic=(Traffic("dns/rs.yaml", "route53-recordset"),)
    )
    files = {"dns/rs.yaml": RECORDS}
    step = step_changes(CAMPAIGN, CampaignStep("traffic", "t", "50"), where, files)
    assert [d["spec"]["weight"] for d in load_all(step["dns/rs.yaml"] or "")] == [50, 50]
    back = rollback_changes(CAMPAIGN, where, {"dns/rs.yaml": step["dns/rs.yaml"] or ""}, 10)
    assert [d["spec"]["weight"] for d in load_all(back["dns/rs.yaml"] or "")] == [90, 10]


def test_traffic_with_no_entry_for_a_cluster_is_an_error() -> None:
    with pytest.raises(EditError, match="no traffic entry routes to shop-b"):
        set_weights(DNS, Traffic("dns/shop.yaml"), {"shop-b": 10, "shop-a": 90})


def test_fields_preset_and_alb_weighted_target_groups() -> None:
    custom = "kind: Route\nmetadata: {name: r}\nspec:\n  cluster: shop-a\n  split:\n    weight: 100\n"
    t = Traffic(
        "r.yaml", "fields", kind="Route", weight_field="spec.split.weight", cluster_field="spec.cluster"
    )
    assert load_all(set_weights(custom, t, {"shop-a": 40}))[0]["spec"]["split"]["weight"] == 40
    action = {
        "type": "forward",
        "forwardConfig": {
            "targetGroups": [
                {"serviceName": "web-shop-a", "servicePort": 80, "weight": 100},
                {"serviceName": "web-shop-b", "servicePort": 80, "weight": 0},
            ]
        },
    }
    ingress = (
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  annotations:\n"
        f"    alb.ingress.kubernetes.io/actions.weighted: '{json.dumps(action)}'\n"
    )
    out = set_weights(ingress, Traffic("i.yaml", "alb-target-group"), {"shop-a": 90, "shop-b": 10})
    got = json.loads(
        load_all(out)[0]["metadata"]["annotations"]["alb.ingress.kubernetes.io/actions.weighted"]
    )
    assert [g["weight"] for g in got["forwardConfig"]["targetGroups"]] == [90, 10]


def test_decommission_removes_blue_traffic_registry_then_request() -> None:
    files = {**FILES, "dns/shop.yaml": DNS + "---\n" + DNS.replace("shop-a", "shop-b")}
    first = step_changes(CAMPAIGN, CampaignStep("decommission-workloads", "t"), WHERE, files)
    assert [d["metadata"]["name"] for d in load_all(first["dns/shop.yaml"] or "")] == ["shop-b"]
    assert "shop-a" not in (first[".github/gitops-bot.yml"] or "")
    second = step_changes(CAMPAIGN, CampaignStep("decommission-cluster", "t"), WHERE, files)
    assert second == {"clusters/prod/shop-a/cluster.yaml": None}
