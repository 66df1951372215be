"""Flux variable substitution and target discovery (cluster, environment, sources, dependsOn)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain.render import discover
from bot.domain.render.flux import substitute_object, substitute_text
from bot.render_runtime.engine import render_target
from bot.render_runtime.gotemplate_runner import default_runner
from tests.render.conftest import FLEET, KEY, write

FLUX = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"


def test_substitution_forms() -> None:
    variables = {"cluster_name": "prod-use1", "region": "us-east-1"}
    text = (
        "a: ${cluster_name}\nb: ${missing:=fallback}\nc: ${missing:-dash}\n"
        "d: $${cluster_name}\ne: x${nothing}y\n"
    )
    assert substitute_text(text, variables) == (
        "a: prod-use1\nb: fallback\nc: dash\nd: ${cluster_name}\ne: xy\n"
    )


def test_substitution_retypes_values_and_honours_the_disable_annotation() -> None:
    obj = {"kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "${replicas}"}}
    assert substitute_object(obj, {"replicas": "3"})["spec"]["replicas"] == 3
    off = {
        "kind": "X",
        "metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}},
        "v": "${a}",
    }
    assert substitute_object(off, {"a": "b"})["v"] == "${a}"


def test_kro_expressions_are_not_flux_variables() -> None:
    text = "vpc: ${clusterVPC.status.vpcID}\nname: ${schema.spec.name}\n"
    assert substitute_text(text, {"clusterVPC": "x"}) == text


def test_fleet_targets_are_bound_to_clusters_and_environments() -> None:
    targets = {
        t.name: t
        for t in discover(
            FLEET, {"clusters": _registry()}, secret_key=KEY, go_engine=default_runner()
        ).targets
    }
    addons = targets["flux/prod-euw1/flux-system/addons"]
    assert (addons.cluster, addons.env, addons.path) == ("prod-euw1", "prod", "common/addons")
    assert dict(addons.variables)["region"] == "eu-west-1"
    assert addons.var_sources == ("clusters/prod/prod-euw1/flux/cluster-info.yaml",)
    assert addons.depends_on == ("sources",)
    app = targets["argocd/checkout-staging-use1"]
    assert (app.cluster, app.env, app.path, app.namespace) == (
        "staging-use1",
        "staging",
        "apps/checkout/overlays/staging",
        "checkout",
    )
    assert targets["applicationset/workloads"].kind == "objects"


def _registry() -> list[dict[str, str]]:
    import yaml

    config = yaml.safe_load((FLEET / ".github/gitops-bot.yml").read_text())
    return list(config["clusters"])


def test_cluster_and_env_from_flux_variables_without_a_registry(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "clusters/one/info.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cluster-info\n  namespace: flux-system\n"
                "data:\n  cluster_name: one\n  env: staging\n"
            ),
            "clusters/one/apps.yaml": FLUX
            + "metadata:\n  name: apps\n  namespace: flux-system\nspec:\n  path: ./apps\n"
            "  dependsOn:\n    - name: infra\n  postBuild:\n    substituteFrom:\n"
            "      - kind: ConfigMap\n        name: cluster-info\n"
            "      - kind: Secret\n        name: absent\n"
            "      - kind: Secret\n        name: optional-absent\n        optional: true\n",
            "apps/cm.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  c: ${cluster_name}\n"
            ),
        },
    )
    disc = discover(tmp_path, {}, secret_key=KEY)
    (target,) = [t for t in disc.targets if t.kind == "flux"]
    assert (target.name, target.cluster, target.env) == ("flux/one/flux-system/apps", "one", "staging")
    rules = sorted((f.rule, f.severity.value) for f in disc.findings)
    assert rules == [("render.depends-on", "warning"), ("render.substitute-from", "notice")]
    assert all(f.path == "clusters/one/apps.yaml" and f.hint for f in disc.findings)
    assert disc.scanner is not None
    objects, findings = render_target(tmp_path, target, disc.scanner, secret_key=KEY)
    assert findings == [] and objects[0]["data"]["c"] == "one"


def test_flux_path_outside_the_repository_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"c/k.yaml": FLUX + "metadata:\n  name: x\nspec:\n  path: ../../etc\n"})
    disc = discover(tmp_path, {}, secret_key=KEY)
    assert disc.targets == []
    assert [(f.rule, f.severity.value) for f in disc.findings] == [("render.path", "error")]


def test_broken_yaml_is_reported_not_dropped(tmp_path: Path) -> None:
    write(tmp_path, {"c/k.yaml": FLUX + "metadata:\n  name: [unclosed\n"})
    disc = discover(tmp_path, {}, secret_key=KEY)
    (f,) = disc.findings
    assert f.rule == "render.yaml" and f.path == "c/k.yaml" and "not rendered" in f.message


def test_applicationset_errors_become_findings(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "appset.yaml": (
                "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: bad\nspec:\n"
                "  generators:\n    - matrix:\n        generators:\n          - list: {elements: []}\n"
                "  template:\n    metadata: {name: x}\n    spec: {}\n"
            )
        },
    )
    (f,) = discover(tmp_path, {}, secret_key=KEY).findings
    assert f.rule == "render.applicationset" and "exactly two" in f.message and f.blocking


def test_argocd_directory_include_and_exclude(tmp_path: Path) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"
    write(
        tmp_path,
        {
            "app.yaml": (
                "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: demo\nspec:\n"
                "  destination:\n    server: https://kubernetes.default.svc\n    namespace: demo\n"
                "  source:\n    path: manifests\n    directory:\n      recurse: true\n"
                "      include: '{*.yaml,extra/*}'\n      exclude: 'skip-*'\n"
            ),
            "manifests/a.yaml": cm.format("a"),
            "manifests/skip-b.yaml": cm.format("b"),
            "manifests/notes.json": '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}',
            "manifests/extra/d.yml": cm.format("d"),
        },
    )
    disc = discover(tmp_path, {}, secret_key=KEY)
    (target,) = [t for t in disc.targets if t.kind == "argocd"]
    assert disc.scanner is not None
    objects, _ = render_target(tmp_path, target, disc.scanner, secret_key=KEY)
    assert sorted(o["metadata"]["name"] for o in objects) == ["a", "d"]
    assert all(o["metadata"]["namespace"] == "demo" for o in objects)


def test_flux_options_on_the_repository_root_are_a_notice(tmp_path: Path) -> None:
    write(tmp_path, {"k.yaml": FLUX + "metadata:\n  name: x\nspec:\n  path: ./\n  images:\n    - name: a\n"})
    rules = [(f.rule, f.severity.value) for f in discover(tmp_path, {}, secret_key=KEY).findings]
    assert rules == [("render.options", "notice")]


ODD_SHAPES = [
    FLUX + "metadata: [a]\nspec: {path: ./}\n",
    FLUX + "metadata: {name: x}\nspec: just-a-string\n",
    FLUX + "metadata: {name: x}\nspec:\n  path: ./\n  postBuild: [1, 2]\n",
    FLUX + "metadata: {name: x}\nspec:\n  path: ./\n  dependsOn: oops\n",
    FLUX + "metadata: {name: x}\nspec:\n  path: {nested: 1}\n",
    "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec:\n  source: [1]\n",
    "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec:\n"
    "  sources: [{path: 3}]\n  destination: []\n",
    "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {name: s}\nspec:\n"
    "  generators: nope\n",
    "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {name: s}\nspec:\n"
    "  generators: [{list: {elements: [{a: b}]}}]\n  template: [1]\n",
    "apiVersion: v1\nkind: Secret\nmetadata: {name: s, labels: {argocd.argoproj.io/secret-type: cluster}}\n"
    "data: [1]\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\ndata:\n  k: ${x}\n",
]


@pytest.mark.parametrize("text", ODD_SHAPES)
def test_odd_shapes_give_findings_never_a_crash(tmp_path: Path, text: str) -> None:
    write(
        tmp_path,
        {"odd.yaml": text, "ok/kustomization.yaml": "resources: [cm.yaml]\n", "ok/cm.yaml": ODD_SHAPES[-1]},
    )
    disc = discover(tmp_path, {}, secret_key=KEY)
    assert disc.scanner is not None
    for target in disc.targets:
        render_target(tmp_path, target, disc.scanner, secret_key=KEY)
    assert all(f.path and f.message and f.hint for f in disc.findings)
    assert "kustomize/ok" in {t.name for t in disc.targets}
    if text is not ODD_SHAPES[-1]:
        assert [f for f in disc.findings if f.path == "odd.yaml"], "an odd object needs a finding"


def test_kustomization_nested_in_a_flux_folder_is_rendered_by_that_target_only(tmp_path: Path) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"
    write(
        tmp_path,
        {
            "clusters/a/sync.yaml": FLUX
            + "metadata:\n  name: sync\n  namespace: flux-system\nspec:\n  path: ./clusters/a\n",
            "clusters/a/plain.yaml": cm.format("plain"),
            "clusters/a/infra/kustomization.yaml": "resources: [cm.yaml]\nnamePrefix: infra-\n",
            "clusters/a/infra/cm.yaml": cm.format("cm"),
        },
    )
    disc = discover(tmp_path, {}, secret_key=KEY)
    assert [t.name for t in disc.targets] == ["flux/a/flux-system/sync"]  # it syncs its own folder: cluster a
    assert disc.scanner is not None
    objects, findings = render_target(tmp_path, disc.targets[0], disc.scanner, secret_key=KEY)
    assert findings == []
    assert sorted(o["metadata"]["name"] for o in objects) == ["infra-cm", "plain", "sync"]


def test_target_namespace_is_not_set_on_cluster_scoped_objects() -> None:
    from bot.domain.kinds import is_cluster_scoped

    assert is_cluster_scoped({"kind": "K8sRequiredLabels", "apiVersion": "constraints.gatekeeper.sh/v1beta1"})
    assert is_cluster_scoped({"kind": "ClusterIssuer", "apiVersion": "cert-manager.io/v1"})
    assert is_cluster_scoped({"kind": "Namespace", "apiVersion": "v1"})
    assert not is_cluster_scoped({"kind": "Cluster", "apiVersion": "eks.services.k8s.aws/v1alpha1"})
    assert not is_cluster_scoped({"kind": "Deployment", "apiVersion": "apps/v1"})
