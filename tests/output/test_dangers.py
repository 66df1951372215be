"""The danger report: table-driven rules, the golden markdown section, and `gitops-bot check` end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import main
from bot.domain.dangers import Danger, Where, find_dangers
from bot.domain.diff import diff_check_output, diff_comment_parts
from bot.domain.render.result import DiffResult
from tests.output.markdown import MD, flat
from tests.render.conftest import commit, git
from tests.render.test_diff import _golden

MakeRepo = Callable[..., Path]
WHERE = Where("prod-use1", "prod", "clusters/prod-use1", "flux")


def obj(api: str, kind: str, name: str, ns: str = "", **rest: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": ns} if ns else {})}
    meta.update(rest.pop("metadata", {}))
    return {"apiVersion": api, "kind": kind, "metadata": meta, **rest}


ACK = "eks.services.k8s.aws/v1alpha1"
CLUSTER = obj(
    ACK,
    "Cluster",
    "prod",
    "infra",
    spec={
        "name": "prod",
        "version": "1.31",
        "roleARN": "arn:r",
        "resourcesVPCConfig": {"subnetIDs": ["s-1", "s-2"]},
    },
)
KRO = obj(
    "kro.run/v1alpha1", "EKSCluster", "analytics", "infra", spec={"region": "us-east-1", "version": "1.31"}
)
DEPLOY = obj(
    "apps/v1", "Deployment", "web", "web", spec={"selector": {"matchLabels": {"app": "web"}}, "replicas": 2}
)
STS = obj(
    "apps/v1",
    "StatefulSet",
    "db",
    "web",
    spec={
        "selector": {"matchLabels": {"app": "db"}},
        "volumeClaimTemplates": [
            {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "10Gi"}}}}
        ],
    },
)
SVC = obj("v1", "Service", "web", "web", spec={"type": "ClusterIP", "clusterIP": "10.0.0.10"})
NS = obj("v1", "Namespace", "web")
CRD = obj(
    "apiextensions.k8s.io/v1",
    "CustomResourceDefinition",
    "widgets.example.com",
    spec={"group": "example.com", "names": {"kind": "Widget"}},
)
WIDGET = obj("example.com/v1", "Widget", "w", "web")
KS = obj(
    "kustomize.toolkit.fluxcd.io/v1",
    "Kustomization",
    "apps",
    "flux-system",
    spec={"prune": True, "path": "./apps"},
)
HR = obj("helm.toolkit.fluxcd.io/v2", "HelmRelease", "cert-manager", "cert-manager", spec={"chart": {}})
APP = obj(
    "argoproj.io/v1alpha1",
    "Application",
    "web",
    "argocd",
    spec={"syncPolicy": {"automated": {"prune": True}}},
)
NODEGROUP = obj(ACK, "Nodegroup", "prod-general", "infra", spec={"clusterName": "prod"})
ADDON = obj(ACK, "Addon", "vpc-cni", "infra", spec={"name": "vpc-cni"})


def changed(o: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(o))
    node = out
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return out


CASES: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], list[tuple[str, str]]]] = [
    ("cluster deleted", [CLUSTER], [], [("delete.cluster", "prod")]),
    ("kro cluster deleted", [KRO], [], [("delete.cluster", "analytics")]),
    ("node group deleted", [NODEGROUP], [], [("delete.nodegroup", "prod-general")]),
    ("add-on deleted", [ADDON, HR], [], [("delete.addon", "cert-manager"), ("delete.addon", "vpc-cni")]),
    (
        "cluster renamed in place",
        [CLUSTER],
        [changed(CLUSTER, ["spec", "name"], "prod-2")],
        [("replace.cluster", "prod")],
    ),
    (
        "subnets changed",
        [CLUSTER],
        [changed(CLUSTER, ["spec", "resourcesVPCConfig", "subnetIDs"], ["s-3"])],
        [("replace.cluster", "prod")],
    ),
    (
        "kro region changed",
        [KRO],
        [changed(KRO, ["spec", "region"], "eu-west-1")],
        [("replace.cluster", "analytics")],
    ),
    ("version bump is not dangerous", [CLUSTER], [changed(CLUSTER, ["spec", "version"], "1.32")], []),
    (
        "selector changed",
        [DEPLOY],
        [changed(DEPLOY, ["spec", "selector"], {"matchLabels": {"app": "web2"}})],
        [("replace.selector", "web")],
    ),
    ("replicas are not dangerous", [DEPLOY], [changed(DEPLOY, ["spec", "replicas"], 5)], []),
    (
        "volume claims changed",
        [STS],
        [changed(STS, ["spec", "volumeClaimTemplates"], [])],
        [("replace.volume-claims", "db")],
    ),
    (
        "service type changed",
        [SVC],
        [changed(SVC, ["spec", "type"], "LoadBalancer")],
        [("replace.service", "web")],
    ),
    (
        "service clusterIP changed",
        [SVC],
        [changed(SVC, ["spec", "clusterIP"], "10.0.0.11")],
        [("replace.service", "web")],
    ),
    ("namespace deleted", [NS, DEPLOY, SVC], [], [("delete.namespace", "web")]),
    ("crd deleted", [CRD, WIDGET], [WIDGET], [("delete.crd", "widgets.example.com")]),
    ("pruning kustomization removed", [KS], [], [("delete.prune", "apps")]),
    ("kustomization suspended", [KS], [changed(KS, ["spec", "suspend"], True)], [("suspend", "apps")]),
    ("auto-sync switched off", [APP], [changed(APP, ["spec", "syncPolicy"], {})], [("suspend", "web")]),
    (
        "auto-sync disabled by flag",
        [APP],
        [changed(APP, ["spec", "syncPolicy", "automated", "enabled"], False)],
        [("suspend", "web")],
    ),
    ("a new object is not dangerous", [], [DEPLOY], []),
]


@pytest.mark.parametrize(("base", "head", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rules(
    base: list[dict[str, Any]], head: list[dict[str, Any]], expected: list[tuple[str, str]]
) -> None:
    where = Where("prod-use1", "prod", "clusters/prod-use1", "kustomize")
    found = find_dangers(where, base, head)
    assert sorted((d.rule, d.name) for d in found) == sorted(expected)
    assert all(d.cluster == "prod-use1" and d.path == "clusters/prod-use1" and d.message for d in found)


def test_counts_what_goes_with_a_namespace_or_crd() -> None:
    (ns,) = find_dangers(WHERE, [NS, DEPLOY, SVC], [DEPLOY, SVC])
    assert "(2 in this revision's render)" in ns.message
    (crd,) = find_dangers(WHERE, [CRD, WIDGET], [WIDGET])
    assert "every Widget object" in crd.message and "(1 in" in crd.message


def test_an_emptied_flux_target_prunes_everything() -> None:
    (danger,) = find_dangers(WHERE, [DEPLOY, SVC], [])
    assert danger.rule == "delete.prune" and "rendered 2 object(s)" in danger.message


def test_danger_section_golden() -> None:
    dangers = [
        *find_dangers(WHERE, [CLUSTER, NS, DEPLOY], [changed(CLUSTER, ["spec", "name"], "x"), DEPLOY]),
        Danger(
            "suspend", "dev-use1", "Application", "web|`x`", "apps/@octocat", "Argo CD off", "dev", "argocd"
        ),
    ]
    result = DiffResult(dangers=sorted(dangers, key=Danger.sort_key), targets_total=3, targets_rendered=1)
    part = diff_comment_parts(result, base_sha="a" * 40, head_sha="b" * 40)[0]
    _golden("dangers.md", part)
    assert part.index("dangerous change") < part.index("No rendered object changes")
    rows = [t for t in flat(MD.parse(part)) if t.type == "tr_open"]
    assert len(rows) == 1 + 3  # header and one row per danger
    title, summary, _text = diff_check_output(result)
    assert title.startswith("⚠️ 3 dangerous change(s)") and "### ⚠️ 3 dangerous changes" in summary


def test_check_json_lists_the_dangers(make_repo: MakeRepo, capsys: pytest.CaptureFixture[str]) -> None:
    def dump(*objs: dict[str, Any]) -> str:
        return "---\n".join(json.dumps(o) + "\n" for o in objs)

    repo = make_repo(
        {"apps/web/kustomization.yaml": "resources:\n  - all.yaml\n", "apps/web/all.yaml": dump(NS, SVC)}
    )
    git(repo, "checkout", "-q", "-b", "pr")
    commit(repo, {"apps/web/all.yaml": dump(changed(SVC, ["spec", "type"], "NodePort"))})
    git(repo, "checkout", "-q", "main")
    code = main(["check", "--repo", str(repo), "--base", "main", "--head", "pr", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0  # dangers are for reviewers (and approval rules), not errors
    assert [(d["rule"], d["kind"], d["name"], d["path"]) for d in data["dangers"]] == [
        ("delete.namespace", "Namespace", "web", "apps/web"),
        ("replace.service", "Service", "web", "apps/web"),
    ]
    assert set(data["dangers"][0]) >= {"rule", "cluster", "kind", "name", "path", "message"}


def test_a_cluster_request_nothing_renders_is_judged_as_written(
    make_repo: MakeRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    # a folder a controller elsewhere applies: no kustomization, Flux or Argo CD object renders it, so
    # its removal had no rendered danger and a `when: dangerous` approval rule did not wait
    rendered = obj(ACK, "Cluster", "web", "infra", spec={"name": "web", "version": "1.31"})
    repo = make_repo(
        {
            "clusters/prod/prod/cluster.yaml": json.dumps(CLUSTER) + "\n",
            "apps/web/kustomization.yaml": "resources:\n  - cluster.yaml\n",
            "apps/web/cluster.yaml": json.dumps(rendered) + "\n",
        }
    )
    git(repo, "checkout", "-q", "-b", "pr")
    commit(
        repo,
        {
            "clusters/prod/prod/cluster.yaml": None,
            "apps/web/cluster.yaml": None,
            "apps/web/kustomization.yaml": "resources: []\n",
        },
    )
    git(repo, "checkout", "-q", "main")
    main(["check", "--repo", str(repo), "--base", "main", "--head", "pr", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    got = sorted((d["rule"], d["name"], d["cluster"], d["path"]) for d in data["dangers"])
    # the rendered one once (not again from its file); the unrendered one from its file
    assert ("delete.cluster", "prod", "not rendered", "clusters/prod/prod/cluster.yaml") in got
    assert got == [
        ("delete.cluster", "prod", "not rendered", "clusters/prod/prod/cluster.yaml"),
        ("delete.cluster", "web", "-", "apps/web"),
    ]


def test_a_when_dangerous_approval_rule_applies_only_with_dangers() -> None:
    from bot.domain.config import parse_config
    from bot.domain.governance.approvals import ApprovalFacts, evaluate

    config = parse_config(
        "version: 1\napprovals:\n  rules:\n"
        "    - name: destroys\n      when: dangerous\n      require: {users: [sre-lead]}\n"
        "    - name: any\n      require: {count: 1}\n"
    )
    facts = ApprovalFacts(
        author="dev",
        head_sha="h" * 40,
        head_tree="t" * 40,
        base_ref="main",
        changed_paths=("apps/web/all.yaml",),
    )
    assert [r.name for r in evaluate(facts, config).rules] == ["any"]
    dangerous = ApprovalFacts(
        **{**{f: getattr(facts, f) for f in facts.__slots__}, "dangers": ("delete.namespace",)}
    )
    assert [r.name for r in evaluate(dangerous, config).rules] == ["destroys", "any"]
