"""Flux Kustomization and Argo CD source.kustomize options, checked against the real kustomize.

Each case renders a target through discovery and the engine, and compares the objects with
what ``kubectl kustomize`` builds from the kustomization the controller would write (the
options spelled out in kustomization.yaml by hand), besides checking the visible effect.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.domain.render.discovery import discover
from bot.render_runtime.engine import render_target
from bot.render_runtime.kustomize_runner import kustomize_command
from tests.render.conftest import KEY, write

BASE = {
    "apps/web/base/kustomization.yaml": (
        "resources: [deploy.yaml, svc.yaml]\nimages:\n- name: nginx\n  newTag: '1.24'\n"
    ),
    "apps/web/base/deploy.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {app: web}}\n"
        "spec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n"
        "    metadata: {labels: {app: web}}\n    spec:\n      containers:\n"
        "      - {name: web, image: nginx}\n      - {name: cache, image: redis:6}\n"
    ),
    "apps/web/base/svc.yaml": (
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n"
        "  ports: [{port: 80}]\n"
    ),
    "apps/web/prod/kustomization.yaml": "resources: [../base]\n",
    "components/monitoring/kustomization.yaml": (
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        "patches:\n- target: {kind: Deployment}\n  patch: |\n"
        "    - op: add\n      path: /metadata/annotations\n      value: {prometheus.io/scrape: 'true'}\n"
    ),
    "plain/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n",
}
FLUX_HEAD = (
    "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
    "metadata: {name: web, namespace: flux-system}\n"
)


def kustomize(tree: Path, folder: str, kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    """The expected output: ``folder`` built with ``kustomization`` in place of its own (in a copy)."""
    copy = tree.parent / f"expected-{tree.name}"
    shutil.copytree(tree, copy)
    try:
        (copy / folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        out = subprocess.run(
            [*kustomize_command(), str(copy / folder)], capture_output=True, text=True, check=True
        ).stdout
    finally:
        shutil.rmtree(copy)
    return sorted((d for d in yaml.safe_load_all(out) if d), key=lambda o: (o["kind"], o["metadata"]["name"]))


def rendered(tree: Path, name: str) -> list[dict[str, Any]]:
    disc = discover(tree, {}, secret_key=KEY)
    assert not [f for f in disc.findings if f.blocking], disc.findings
    (target,) = [t for t in disc.targets if t.name == name]
    assert disc.scanner is not None
    objects, findings = render_target(tree, target, disc.scanner, secret_key=KEY)
    assert not [f for f in findings if f.blocking], findings
    return sorted(objects, key=lambda o: (o["kind"], o["metadata"]["name"]))


def containers(objects: list[dict[str, Any]]) -> dict[str, str]:
    (deploy,) = [o for o in objects if o["kind"] == "Deployment"]
    return {c["name"]: c["image"] for c in deploy["spec"]["template"]["spec"]["containers"]}


# ------------------------------------------------------------------ Flux


FLUX_CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "patches",
        "  patches:\n  - target: {kind: Deployment, name: web}\n    patch: |\n"
        "      - {op: replace, path: /spec/replicas, value: 3}\n",
        {
            "patches": [
                {
                    "target": {"kind": "Deployment", "name": "web"},
                    "patch": "- {op: replace, path: /spec/replicas, value: 3}\n",
                }
            ]
        },
    ),
    (
        "images",
        "  images:\n  - {name: redis, newTag: '7.2'}\n"
        "  - {name: nginx, newName: registry.example.com/nginx}\n",
        {
            "images": [
                {"name": "redis", "newTag": "7.2"},
                {"name": "nginx", "newName": "registry.example.com/nginx"},
            ]
        },
    ),
    (
        "components",
        "  components: [../../../components/monitoring]\n",
        {"components": ["../../../components/monitoring"]},
    ),
    ("namePrefix", "  namePrefix: eu-\n  nameSuffix: -v2\n", {"namePrefix": "eu-", "nameSuffix": "-v2"}),
    (
        "targetNamespace",
        "  targetNamespace: shop\n  namePrefix: eu-\n",
        {"namespace": "shop", "namePrefix": "eu-"},
    ),
]


@pytest.mark.parametrize(("option", "yaml_spec", "written"), FLUX_CASES, ids=[c[0] for c in FLUX_CASES])
def test_flux_options_build_like_the_kustomization_flux_writes(
    tmp_path: Path, option: str, yaml_spec: str, written: dict[str, Any]
) -> None:
    flux = (
        FLUX_HEAD + "spec:\n  path: ./apps/web/prod\n  sourceRef: {kind: GitRepository, name: flux-system}\n"
    )
    write(tmp_path, {**BASE, "clusters/prod/web.yaml": flux + yaml_spec})
    got = rendered(tmp_path, "flux/-/flux-system/web")
    expected = kustomize(tmp_path, "apps/web/prod", {"resources": ["../base"], **written})
    assert got == expected
    if option == "images":
        # nginx keeps the base's tag (Flux merges by name), redis gets the new one
        assert containers(got) == {"web": "registry.example.com/nginx:1.24", "cache": "redis:7.2"}
    if option == "components":
        assert got[0]["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}
    if option == "namePrefix":
        assert sorted(o["metadata"]["name"] for o in got) == ["eu-web-v2", "eu-web-v2"]


def test_flux_images_digest_replaces_the_tag_and_a_folder_without_kustomization(tmp_path: Path) -> None:
    flux = FLUX_HEAD + (
        "spec:\n  path: ./apps/web/base\n  images:\n  - {name: nginx, digest: 'sha256:" + "a" * 64 + "'}\n"
    )
    write(tmp_path, {**BASE, "clusters/prod/web.yaml": flux})
    assert containers(rendered(tmp_path, "flux/-/flux-system/web"))["web"] == "nginx@sha256:" + "a" * 64
    flux_plain = FLUX_HEAD + "spec:\n  path: ./plain\n  namePrefix: p-\n"
    write(tmp_path, {"clusters/prod/web.yaml": flux_plain})
    (cm,) = rendered(tmp_path, "flux/-/flux-system/web")
    assert cm["metadata"]["name"] == "p-settings"


def test_flux_common_metadata_sets_labels_and_annotations_but_not_selectors(tmp_path: Path) -> None:
    flux = FLUX_HEAD + (
        "spec:\n  path: ./apps/web/prod\n  commonMetadata:\n"
        "    labels: {team: shop, app: overridden}\n    annotations: {owner: shop@example.com}\n"
    )
    write(tmp_path, {**BASE, "clusters/prod/web.yaml": flux})
    deploy, svc = rendered(tmp_path, "flux/-/flux-system/web")
    assert deploy["metadata"]["labels"] == {"app": "overridden", "team": "shop"}
    assert deploy["metadata"]["annotations"] == {"owner": "shop@example.com"}
    assert deploy["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert svc["spec"]["selector"] == {"app": "web"}
    assert svc["metadata"]["labels"] == {"team": "shop", "app": "overridden"}


def test_flux_ignore_missing_components(tmp_path: Path) -> None:
    flux = FLUX_HEAD + (
        "spec:\n  path: ./apps/web/prod\n  ignoreMissingComponents: true\n"
        "  components: [../../../components/monitoring, ../../../components/absent]\n"
    )
    write(tmp_path, {**BASE, "clusters/prod/web.yaml": flux})
    deploy, _svc = rendered(tmp_path, "flux/-/flux-system/web")
    assert deploy["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}


def test_flux_option_paths_must_stay_in_the_repository(tmp_path: Path) -> None:
    flux = FLUX_HEAD + "spec:\n  path: ./apps/web/prod\n  components: [../../../../outside]\n"
    write(tmp_path, {**BASE, "clusters/prod/web.yaml": flux})
    disc = discover(tmp_path, {}, secret_key=KEY)
    (target,) = [t for t in disc.targets if t.kind == "flux"]
    assert disc.scanner is not None
    objects, findings = render_target(tmp_path, target, disc.scanner, secret_key=KEY)
    assert objects == []
    assert [(f.rule, f.blocking) for f in findings] == [("render.options", True)]
    assert "leaves the repository" in findings[0].message


# ------------------------------------------------------------------ Argo CD

ARGO_HEAD = (
    "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: web, namespace: argocd}\nspec:\n"
    "  project: default\n  destination: {server: https://kubernetes.default.svc, namespace: web}\n"
)

ARGO_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "images",
        {"images": ["nginx=registry.example.com/nginx:1.25", "redis:7"]},
        {
            "images": [
                {"name": "nginx", "newName": "registry.example.com/nginx", "newTag": "1.25"},
                {"name": "redis", "newTag": "7"},
            ]
        },
    ),
    ("namePrefix", {"namePrefix": "a-", "nameSuffix": "-b"}, {"namePrefix": "a-", "nameSuffix": "-b"}),
    ("commonLabels", {"commonLabels": {"team": "shop"}}, {"commonLabels": {"team": "shop"}}),
    (
        "labelWithoutSelector",
        {"commonLabels": {"team": "shop"}, "labelWithoutSelector": True},
        {"labels": [{"pairs": {"team": "shop"}, "includeSelectors": False}]},
    ),
    ("commonAnnotations", {"commonAnnotations": {"owner": "shop"}}, {"commonAnnotations": {"owner": "shop"}}),
    ("namespace", {"namespace": "shop"}, {"namespace": "shop"}),
    ("replicas", {"replicas": [{"name": "web", "count": 4}]}, {"replicas": [{"name": "web", "count": 4}]}),
    (
        "patches",
        {
            "patches": [
                {"target": {"kind": "Service"}, "patch": "- {op: add, path: /spec/type, value: NodePort}\n"}
            ]
        },
        {
            "patches": [
                {"target": {"kind": "Service"}, "patch": "- {op: add, path: /spec/type, value: NodePort}\n"}
            ]
        },
    ),
    (
        "components",
        {"components": ["../../../components/monitoring"]},
        {"components": ["../../../components/monitoring"]},
    ),
]


@pytest.mark.parametrize(("option", "options", "written"), ARGO_CASES, ids=[c[0] for c in ARGO_CASES])
def test_argocd_kustomize_options_build_like_kustomize_edit(
    tmp_path: Path, option: str, options: dict[str, Any], written: dict[str, Any]
) -> None:
    app = ARGO_HEAD + (
        "  source:\n    repoURL: https://github.com/example/fleet\n    path: apps/web/prod\n"
        f"    kustomize: {json.dumps(options)}\n"
    )
    write(tmp_path, {**BASE, "argocd/web.yaml": app})
    got = rendered(tmp_path, "argocd/web")
    expected = kustomize(tmp_path, "apps/web/prod", {"resources": ["../base"], **written})
    for obj in expected:  # Argo CD fills in the destination namespace where none is set
        obj["metadata"].setdefault("namespace", "web")
    assert got == expected
    if option == "images":
        assert containers(got) == {"web": "registry.example.com/nginx:1.25", "cache": "redis:7"}
    if option == "commonLabels":
        assert got[0]["spec"]["selector"]["matchLabels"] == {"app": "web", "team": "shop"}
    if option == "labelWithoutSelector":
        assert got[0]["spec"]["selector"]["matchLabels"] == {"app": "web"}
    if option == "replicas":
        assert got[0]["spec"]["replicas"] == 4


def test_multi_source_application_renders_each_source_with_its_own_options(tmp_path: Path) -> None:
    app = ARGO_HEAD.replace("metadata: {name: web,", "metadata: {name: shop,") + (
        "  sources:\n"
        "  - {repoURL: https://github.com/example/fleet, targetRevision: main, ref: values}\n"
        "  - repoURL: https://github.com/example/fleet\n    path: apps/web/prod\n"
        "    kustomize: {namePrefix: shop-, images: ['nginx:1.27']}\n"
        "  - {repoURL: https://github.com/example/fleet, path: plain}\n"
    )
    write(tmp_path, {**BASE, "argocd/shop.yaml": app})
    disc = discover(tmp_path, {}, secret_key=KEY)
    assert sorted(t.name for t in disc.targets if t.kind == "argocd") == ["argocd/shop#1", "argocd/shop#2"]
    web = rendered(tmp_path, "argocd/shop#1")
    assert sorted(o["metadata"]["name"] for o in web) == ["shop-web", "shop-web"]
    assert containers(web)["web"] == "nginx:1.27"
    (cm,) = rendered(tmp_path, "argocd/shop#2")
    assert cm["metadata"] == {"name": "settings", "namespace": "web"}


def test_a_changed_component_re_renders_the_target(tmp_path: Path) -> None:
    from bot.render_runtime.engine import compute_diff
    from tests.support.gitrepo import GitRepo

    flux = FLUX_HEAD + "spec:\n  path: ./apps/web/prod\n  components: [../../../components/monitoring]\n"
    write(tmp_path, {**BASE, "clusters/prod/web.yaml": flux})
    GitRepo(tmp_path)
    base = tmp_path.parent / "base-tree"
    shutil.copytree(tmp_path, base)
    path = "components/monitoring/kustomization.yaml"
    write(tmp_path, {path: (tmp_path / path).read_text().replace("'true'", "'false'")})
    result = compute_diff(base, tmp_path, {}, changed_paths=[path], secret_key=KEY)
    assert [(c.target, c.kind, c.action) for c in result.changes] == [
        ("flux/-/flux-system/web", "Deployment", "changed")
    ]
