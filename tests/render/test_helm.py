"""Helm charts rendered with the real Helm engine (helm-python-sdk), sandboxed.

The chart under tests/fixtures/helm/charts/web has the shape most application charts have:
helpers in _helpers.tpl, include/nindent, range over lists and maps, required, tpl, lookup,
a checksum annotation, an optional Ingress, NOTES.txt and a vendored subchart behind a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from bot.domain.render import discover
from bot.domain.render.helm import (
    ArgoHelm,
    ChartRequest,
    Skip,
    argo_helm,
    argo_request,
    flux_request,
    set_path,
)
from bot.domain.render.merge import deep_merge
from bot.render_runtime import helm_fetch
from bot.render_runtime.engine import compute_diff, render_tree
from bot.render_runtime.helm_runner import WORKER, HelmRenderFailed, HelmRunner
from bot.render_runtime.sandbox import network_isolation
from tests.conftest import ROOT
from tests.render.conftest import KEY, write

CHARTS = ROOT / "tests" / "fixtures" / "helm" / "charts"
SECRET = "hunter2-never-shown"

FLUX_KS = """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: flux-system}
spec:
  path: ./apps/prod
  prune: true
  sourceRef: {kind: GitRepository, name: flux-system}
  postBuild:
    substitute: {cluster_name: prod-use1, env: prod}
"""
RELEASE = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: web}
spec:
  interval: 10m
  chart:
    spec:
      chart: ./charts/web
      sourceRef: {kind: GitRepository, name: flux-system, namespace: flux-system}
  valuesFrom:
    - kind: ConfigMap
      name: web-values
    - kind: Secret
      name: web-db
      valuesKey: password
      targetPath: database.password
    - kind: ConfigMap
      name: not-there
      optional: true
  values:
    replicaCount: 3
    env: {CLUSTER: "${cluster_name}", TIER: gold}
    cache: {enabled: true}
  postRenderers:
    - kustomize:
        patches:
          - target: {kind: Deployment}
            patch: |
              - op: add
                path: /metadata/annotations
                value: {post-rendered: "yes"}
"""
VALUES_CM = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: web-values}
data:
  values.yaml: |
    database: {host: db.prod.internal}
    ingress: {enabled: true, hosts: [web.example.com, www.example.com]}
"""
DB_SECRET = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: web-db}}
stringData: {{password: {SECRET}}}
"""


KUSTOMIZATION = "namespace: web\nresources: [release.yaml, values.yaml, db.yaml]\n"
LOCAL_SOURCE = (
    "      chart: ./charts/web\n"
    "      sourceRef: {kind: GitRepository, name: flux-system, namespace: flux-system}"
)


def flux_tree(root: Path, release: str = RELEASE) -> Path:
    shutil.copytree(CHARTS, root / "charts")
    write(
        root,
        {
            "clusters/prod/apps.yaml": FLUX_KS,
            "apps/prod/kustomization.yaml": KUSTOMIZATION,
            "apps/prod/release.yaml": release,
            "apps/prod/values.yaml": VALUES_CM,
            "apps/prod/db.yaml": DB_SECRET,
        },
    )
    return root


def by_kind(objects: list[dict]) -> dict[str, dict]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def test_a_flux_helm_release_renders_its_chart_with_values_from_configmaps_and_secrets(
    tmp_path: Path,
) -> None:
    tree = flux_tree(tmp_path / "repo")
    [(target, objects)], findings = render_tree(tree, {}, secret_key=KEY)
    assert findings == []
    assert target.name == "flux/prod-use1/flux-system/apps"
    objs = by_kind(objects)
    # the Kustomization's own objects, then the chart's (the subchart is on: cache.enabled)
    assert sorted(objs) == [
        "ConfigMap/web",
        "ConfigMap/web-values",
        "Deployment/web",
        "HelmRelease/web",
        "Ingress/web",
        "Secret/web",
        "Secret/web-db",
        "Service/web",
        "StatefulSet/web-cache",
    ]
    deploy = objs["Deployment/web"]
    assert deploy["metadata"]["namespace"] == "web"  # the release namespace
    assert deploy["metadata"]["annotations"] == {"post-rendered": "yes"}  # postRenderers
    assert deploy["metadata"]["labels"]["helm.sh/chart"] == "web-1.4.0"  # helpers + include
    assert deploy["spec"]["replicas"] == 3  # spec.values over valuesFrom over chart defaults
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/example/web:2.3.1"  # default .Chart.AppVersion
    assert container["env"] == [  # required + range over a map (sorted), Flux variables substituted
        {"name": "DB_HOST", "value": "db.prod.internal"},
        {"name": "CLUSTER", "value": "prod-use1"},
        {"name": "TIER", "value": "gold"},
    ]
    assert len(deploy["spec"]["template"]["metadata"]["annotations"]["checksum/config"]) == 64
    assert objs["ConfigMap/web"]["data"] == {"upstream": "upstream=web.web.svc"}  # tpl
    assert [r["host"] for r in objs["Ingress/web"]["spec"]["rules"]] == ["web.example.com", "www.example.com"]
    assert objs["Secret/web"]["metadata"]["annotations"] == {"example.com/found-in-cluster": "no"}  # lookup
    assert objs["StatefulSet/web-cache"]["spec"]["template"]["spec"]["containers"][0]["args"][1] == "64mb"
    # the Secret value reached the chart only as its masked token, and is masked again in the output
    text = json.dumps(objects)
    assert SECRET not in text
    assert objs["Secret/web"]["stringData"]["DB_PASSWORD"].startswith("<secret hmac:")


def test_a_chart_values_change_is_a_rendered_diff_of_the_workload(tmp_path: Path) -> None:
    base = flux_tree(tmp_path / "base")
    head = flux_tree(tmp_path / "head")
    values = head / "charts/web/values.yaml"
    values.write_text(values.read_text().replace("pullPolicy: IfNotPresent", "pullPolicy: Always"))
    result = compute_diff(base, head, {}, changed_paths=["charts/web/values.yaml"], secret_key=KEY)
    assert result.targets_rendered == 1
    assert [(c.kind, c.name, c.action) for c in result.changes] == [("Deployment", "web", "changed")]
    assert "+        imagePullPolicy: Always" in result.changes[0].diff
    unchanged = compute_diff(base, base, {}, changed_paths=["README.md"], secret_key=KEY)
    assert unchanged.targets_rendered == 0


def test_a_template_error_is_a_finding_with_helms_message(tmp_path: Path) -> None:
    tree = flux_tree(
        tmp_path / "repo", RELEASE.replace("    - kind: ConfigMap\n      name: web-values\n", "")
    )
    [(_target, objects)], findings = render_tree(tree, {}, secret_key=KEY)
    assert [f.rule for f in findings] == ["render.helm"]
    assert findings[0].blocking and "database.host is required" in findings[0].message
    assert (findings[0].path, findings[0].line) == ("apps/prod/release.yaml", 1)  # where the release is
    assert "HelmRelease/web" in by_kind(objects)  # the release itself is still shown


def test_a_chart_from_a_helm_repository_is_a_notice_and_the_release_is_diffed(tmp_path: Path) -> None:
    remote = RELEASE.replace(
        LOCAL_SOURCE,
        "      chart: podinfo\n      version: 6.7.0\n      sourceRef: {kind: HelmRepository, name: podinfo}",
    )
    tree = flux_tree(tmp_path / "repo", remote)
    [(_target, objects)], findings = render_tree(tree, {}, secret_key=KEY)
    assert [(f.rule, f.severity.value) for f in findings] == [("render.helm", "notice")]
    assert "chart `podinfo` 6.7.0 comes from HelmRepository `podinfo`" in findings[0].message
    assert sorted(by_kind(objects)) == ["ConfigMap/web-values", "HelmRelease/web", "Secret/web-db"]


def test_chart_templates_are_not_read_as_manifests_by_discovery(tmp_path: Path) -> None:
    tree = flux_tree(tmp_path / "repo")
    disc = discover(tree, {}, secret_key=KEY)
    assert disc.findings == []
    assert [t.name for t in disc.targets] == ["flux/prod-use1/flux-system/apps"]


ARGO_APP = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web-prod, namespace: argocd}
spec:
  project: default
  destination: {server: https://kubernetes.default.svc, namespace: shop}
  sources:
    - repoURL: https://github.com/example-org/fleet.git
      path: charts/web
      targetRevision: main
      helm:
        releaseName: shop-web
        valueFiles: [values.yaml, $values/envs/prod/web.yaml, missing.yaml]
        ignoreMissingValueFiles: true
        valuesObject: {service: {type: LoadBalancer}}
        parameters:
          - {name: replicaCount, value: "4"}
          - {name: image.tag, value: "1.0", forceString: true}
    - repoURL: https://github.com/example-org/fleet.git
      targetRevision: main
      ref: values
"""


def test_an_argo_cd_helm_source_with_value_files_from_a_ref_source(tmp_path: Path) -> None:
    tree = tmp_path / "repo"
    shutil.copytree(CHARTS, tree / "charts")
    write(
        tree,
        {
            "argocd/web-prod.yaml": ARGO_APP,
            "envs/prod/web.yaml": "database: {host: db.shop}\nenv: {REGION: us-east-1}\n",
        },
    )
    config = {"render": {"argocd": {"repo_urls": ["https://github.com/example-org/fleet.git"]}}}
    rendered, findings = render_tree(tree, config, secret_key=KEY)
    assert findings == []
    [(target, objects)] = rendered
    assert (target.name, target.path, target.namespace) == ("argocd/web-prod#0", "charts/web", "shop")
    objs = by_kind(objects)
    assert sorted(objs) == [
        "ConfigMap/shop-web",
        "Deployment/shop-web",
        "Secret/shop-web",
        "Service/shop-web",
    ]
    deploy = objs["Deployment/shop-web"]
    assert deploy["metadata"]["namespace"] == "shop"
    assert deploy["spec"]["replicas"] == 4  # a parameter is typed like --set
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/example/web:1.0"  # forceString keeps "1.0" a string
    assert container["env"][0] == {"name": "DB_HOST", "value": "db.shop"}
    assert objs["Service/shop-web"]["spec"]["type"] == "LoadBalancer"


def test_argo_value_files_from_another_repository_are_not_guessed() -> None:
    app = yaml.safe_load(ARGO_APP)
    sources = app["spec"]["sources"]
    sources[1]["repoURL"] = "https://github.com/other/values.git"
    skip = argo_helm(
        sources[0], "charts/web", sources, ["https://github.com/example-org/fleet.git"], "web-prod"
    )
    assert isinstance(skip, Skip) and not skip.blocking and "another repository" in skip.message
    sources[0]["helm"]["valueFiles"] = ["../../../etc/passwd"]
    leaving = argo_helm(sources[0], "charts/web", sources, [], "web-prod")
    assert isinstance(leaving, Skip) and leaving.blocking


def test_argo_merge_order_files_then_values_then_parameters() -> None:
    spec = ArgoHelm(
        value_files=["a.yaml", "b.yaml"],
        values={"x": {"y": "inline"}},
        parameters=[("x.z", "true", False), ("n", "007", False), ("dotted\\.key", "v", False)],
        release="r",
    )
    files = {"a.yaml": {"x": {"y": "a", "w": 1}}, "b.yaml": {"x": {"y": "b"}, "list": [1]}}
    request = argo_request(spec, "charts/c", "ns", files.get)
    assert isinstance(request, ChartRequest)
    assert request.values == {
        "x": {"y": "inline", "w": 1, "z": True},
        "list": [1],
        "n": "007",
        "dotted.key": "v",
    }


def test_flux_merge_order_and_masking_of_secret_values() -> None:
    hr = yaml.safe_load(RELEASE)
    objects = [yaml.safe_load(VALUES_CM), yaml.safe_load(DB_SECRET)]
    for obj in objects:
        obj["metadata"]["namespace"] = "web"
    hr["metadata"]["namespace"] = "web"
    hr["spec"]["valuesFrom"].append({"kind": "Secret", "name": "web-db", "valuesKey": "password"})
    skip = flux_request(hr, objects, KEY, lambda rel: None)
    assert isinstance(skip, Skip) and skip.blocking and "is not a map of values" in skip.message
    hr["spec"]["valuesFrom"].pop()
    hr["spec"]["targetNamespace"] = "shop"
    request = flux_request(hr, objects, KEY, lambda rel: None)
    assert isinstance(request, ChartRequest)
    assert (request.release, request.namespace, request.chart_dir) == ("shop-web", "shop", "charts/web")
    assert request.values["database"]["host"] == "db.prod.internal"
    assert request.values["database"]["password"].startswith("<secret hmac:")
    assert SECRET not in json.dumps(request.values)
    del objects[0]
    missing = flux_request(hr, objects, KEY, lambda rel: None)
    assert isinstance(missing, Skip) and not missing.blocking and "web-values" in missing.message


def test_merge_and_set_path() -> None:
    assert deep_merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}, "d": None}) == {
        "a": {"b": 1, "c": [2]},
        "d": None,
    }
    assert set_path({"a": {"b": 1}}, "a.c", "x") == {"a": {"b": 1, "c": "x"}}


def test_the_worker_is_sandboxed_and_bounded(tmp_path: Path) -> None:
    command = WORKER.command()
    assert "-I" in command
    if network_isolation():
        assert command[command.index(network_isolation()[0]) + 1] == "-rn"
    chart = tmp_path / "slow"
    write(
        chart,
        {
            "Chart.yaml": "apiVersion: v2\nname: slow\nversion: 0.1.0\n",
            "templates/cm.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: slow}\ndata:\n"
                '{{- range $i := until 50000000 }}{{- end }}\n  done: "yes"\n'
            ),
        },
    )
    runner = HelmRunner(workers=1, timeout=0.3)
    try:
        with pytest.raises(HelmRenderFailed, match=r"longer than 0\.3 s"):
            runner.render(chart, key="slow", values={}, name="r", namespace="n", crds=False)
        fast = tmp_path / "fast"
        write(
            fast, {"Chart.yaml": "apiVersion: v2\nname: fast\nversion: 0.1.0\n", "templates/a.yaml": "a: b\n"}
        )
        runner.timeout = 30
        assert runner.render(fast, key="fast", values={}, name="r", namespace="n", crds=False) == [
            ("fast/templates/a.yaml", "a: b\n")
        ]
    finally:
        runner.close()


KUSTOMIZE_CHARTS = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: shop
labels:
  - pairs: {team: shop}
helmGlobals:
  chartHome: ../../charts
helmCharts:
  - name: web
    releaseName: shop
    valuesFile: values-prod.yaml
    valuesInline: {replicaCount: 5}
resources: [extra.yaml]
patches:
  - target: {kind: Service}
    patch: |
      - op: replace
        path: /spec/type
        value: NodePort
"""


def test_kustomize_helm_charts_from_a_local_chart_home_are_rendered_and_transformed(tmp_path: Path) -> None:
    tree = tmp_path / "repo"
    shutil.copytree(CHARTS, tree / "charts")
    write(
        tree,
        {
            "apps/shop/kustomization.yaml": KUSTOMIZE_CHARTS,
            "apps/shop/values-prod.yaml": "replicaCount: 2\ndatabase: {host: db.shop}\n",
            "apps/shop/extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n",
        },
    )
    [(target, objects)], findings = render_tree(tree, {}, secret_key=KEY)
    assert findings == [] and target.name == "kustomize/apps/shop"
    objs = by_kind(objects)
    assert sorted(objs) == [
        "ConfigMap/extra",
        "ConfigMap/shop-web",
        "Deployment/shop-web",
        "Secret/shop-web",
        "Service/shop-web",
    ]
    deploy = objs["Deployment/shop-web"]
    assert deploy["metadata"]["namespace"] == "shop" and deploy["metadata"]["labels"]["team"] == "shop"
    assert deploy["spec"]["replicas"] == 5  # valuesInline overrides valuesFile (valuesMerge: override)
    assert objs["Service/shop-web"]["spec"]["type"] == "NodePort"  # the kustomization's patch applies
    # a change in the chart re-renders the root
    head = tmp_path / "head"
    shutil.copytree(tree, head)
    (head / "charts/web/templates/service.yaml").write_text(
        (head / "charts/web/templates/service.yaml")
        .read_text()
        .replace("spec:\n", "spec:\n  sessionAffinity: ClientIP\n")
    )
    result = compute_diff(tree, head, {}, changed_paths=["charts/web/templates/service.yaml"], secret_key=KEY)
    assert [(c.kind, c.action) for c in result.changes] == [("Service", "changed")]


@pytest.fixture
def chart_repository(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A Helm chart repository (index.yaml + .tgz) served by aiohttp on loopback; yields its URL and
    the paths requested."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(CHARTS / "web", arcname="web")
    data = archive.getvalue()
    index = {
        "apiVersion": "v1",
        "entries": {
            "web": [
                {
                    "name": "web",
                    "version": "1.4.0",
                    "digest": hashlib.sha256(data).hexdigest(),
                    "urls": ["charts/web-1.4.0.tgz"],
                },
                {"name": "web", "version": "1.5.0-rc.1", "urls": ["charts/missing.tgz"]},
            ]
        },
    }
    requested: list[str] = []

    async def index_yaml(request: web.Request) -> web.Response:
        requested.append(request.path)
        return web.Response(text=yaml.safe_dump(index))

    async def chart(request: web.Request) -> web.Response:
        requested.append(request.path)
        return web.Response(body=data, content_type="application/gzip")

    app = web.Application()
    app.router.add_get("/index.yaml", index_yaml)
    app.router.add_get("/charts/web-1.4.0.tgz", chart)
    with _serve(app, tmp_path) as url:
        yield url, requested


@contextlib.contextmanager
def _serve(app: web.Application, tmp_path: Path) -> Iterator[str]:
    """Serve ``app`` on loopback from a thread, with a fresh chart cache; yield its URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    helm_fetch.use_cache_dir(tmp_path / "chart-cache")
    helm_fetch.forget()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        helm_fetch.use_cache_dir(None)
        helm_fetch.forget()
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_chart_from_an_allowed_helm_repository_is_fetched_once_and_rendered(
    tmp_path: Path, chart_repository: tuple[str, list[str]]
) -> None:
    url, requested = chart_repository
    release = RELEASE.replace(
        LOCAL_SOURCE,
        "      chart: web\n      version: 1.4.0\n      sourceRef: {kind: HelmRepository, name: charts}",
    )
    tree = flux_tree(tmp_path / "repo", release)
    write(
        tree,
        {
            "apps/prod/repository.yaml": (
                "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\n"
                f"metadata: {{name: charts}}\nspec: {{url: {url}/}}\n"
            ),
            "apps/prod/kustomization.yaml": KUSTOMIZATION.replace("db.yaml]", "db.yaml, repository.yaml]"),
        },
    )
    # not allowed (the default): a notice saying how to allow it, nothing fetched
    [(_t, objects)], findings = render_tree(tree, {}, secret_key=KEY)
    assert [(f.rule, f.severity.value) for f in findings] == [("render.helm", "notice")]
    assert f"list {url} in `render.helm.repositories`" in findings[0].hint
    assert "Deployment/web" not in by_kind(objects) and requested == []
    config = {"render": {"helm": {"repositories": [url]}}}
    [(_t, objects)], findings = render_tree(tree, config, secret_key=KEY)
    assert findings == []
    assert by_kind(objects)["Deployment/web"]["spec"]["replicas"] == 3
    helm_fetch.forget()  # the index is read again, the archive comes from the cache (keyed by digest)
    render_tree(tree, config, secret_key=KEY)
    assert requested == ["/index.yaml", "/charts/web-1.4.0.tgz", "/index.yaml"]
    [cached] = (tmp_path / "chart-cache").iterdir()
    assert cached.name == hashlib.sha256(cached.read_bytes()).hexdigest() + ".tgz"
    # a version the repository does not have: a warning, the release is still diffed
    missing = release.replace("version: 1.4.0", "version: 9.9.9")
    write(tree, {"apps/prod/release.yaml": missing})
    [(_t, objects)], findings = render_tree(tree, config, secret_key=KEY)
    assert [(f.rule, f.severity.value) for f in findings] == [("render.helm", "warning")]
    assert "no chart `web` at version `9.9.9`" in findings[0].message and "HelmRelease/web" in by_kind(
        objects
    )


def test_pick_version() -> None:
    entries = [{"version": "1.2.0"}, {"version": "1.10.0"}, {"version": "2.0.0-rc.1"}, {"version": "v1.9.9"}]
    assert helm_fetch.pick_version(entries, "")["version"] == "1.10.0"
    assert helm_fetch.pick_version(entries, "1.9.9")["version"] == "v1.9.9"
    assert helm_fetch.pick_version(entries, ">=1.0") is None


def test_a_helm_repository_applied_by_another_kustomization_is_found(
    tmp_path: Path, chart_repository: tuple[str, list[str]]
) -> None:
    url, _requested = chart_repository
    source = "      chart: web\n      sourceRef: {kind: HelmRepository, name: charts, namespace: flux-system}"
    tree = flux_tree(tmp_path / "repo", RELEASE.replace(LOCAL_SOURCE, source))
    write(
        tree,
        {
            "infrastructure/sources/charts.yaml": (
                "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\n"
                f"metadata: {{name: charts, namespace: flux-system}}\nspec: {{url: {url}}}\n"
            )
        },
    )
    rendered, findings = render_tree(
        tree, {"render": {"helm": {"repositories": [url + "/"]}}}, secret_key=KEY
    )
    assert findings == []
    objects = dict((t.name, o) for t, o in rendered)["flux/prod-use1/flux-system/apps"]
    assert by_kind(objects)["Deployment/web"]["metadata"]["labels"]["helm.sh/chart"] == "web-1.4.0"


def argo_remote_app(url: str, value_file: str = "$values/envs/prod/web.yaml") -> str:
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: web-prod, namespace: argocd}}
spec:
  project: default
  destination: {{server: https://kubernetes.default.svc, namespace: shop}}
  sources:
    - repoURL: {url}
      chart: web
      targetRevision: 1.4.0
      helm:
        releaseName: shop-web
        valueFiles: ["{value_file}"]
        values: |
          cache: {{enabled: true}}
        valuesObject: {{service: {{type: LoadBalancer}}}}
        parameters:
          - {{name: replicaCount, value: "5"}}
    - repoURL: https://github.com/example-org/fleet.git
      targetRevision: main
      ref: values
"""


def test_an_argo_cd_chart_from_an_allowed_helm_repository_is_fetched_and_rendered(
    tmp_path: Path, chart_repository: tuple[str, list[str]]
) -> None:
    url, requested = chart_repository
    tree = tmp_path / "repo"
    write(
        tree,
        {
            "argocd/web-prod.yaml": argo_remote_app(url),
            "envs/prod/web.yaml": "database: {host: db.shop}\n",
            "apps/keep/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\n",
        },
    )
    argocd = {"repo_urls": ["https://github.com/example-org/fleet.git"]}
    # not allowed: the Application is diffed, and a notice says how to allow the repository
    rendered, findings = render_tree(tree, {"render": {"argocd": argocd}}, secret_key=KEY)
    assert requested == [] and [f.rule for f in findings] == ["render.helm-source"]
    assert f"list {url} in `render.helm.repositories`" in findings[0].hint
    assert all(o["kind"] == "Application" for _t, objs in rendered for o in objs)
    # allowed: fetched (index, then the archive checked against its digest), rendered with Argo CD's order
    config = {"render": {"argocd": argocd, "helm": {"repositories": [url]}}}
    [(target, objects)], findings = render_tree(tree, config, secret_key=KEY)
    assert findings == [] and requested == ["/index.yaml", "/charts/web-1.4.0.tgz"]
    assert (target.name, target.namespace) == ("argocd/web-prod#0", "shop")
    objs = by_kind(objects)
    deploy = objs["Deployment/shop-web"]
    assert deploy["spec"]["replicas"] == 5 and deploy["metadata"]["namespace"] == "shop"
    assert deploy["spec"]["template"]["spec"]["containers"][0]["env"][0] == {
        "name": "DB_HOST",
        "value": "db.shop",
    }
    assert objs["Service/shop-web"]["spec"]["type"] == "LoadBalancer"
    # a values change in the `$values` file is a rendered diff of the workload
    head = tmp_path / "head"
    shutil.copytree(tree, head)
    write(head, {"envs/prod/web.yaml": "database: {host: db2.shop}\n"})
    result = compute_diff(tree, head, config, changed_paths=["envs/prod/web.yaml"], secret_key=KEY)
    assert ("Deployment", "changed") in [(c.kind, c.action) for c in result.changes]
    # a value file inside the fetched chart is not read here: a notice, the Application is diffed
    write(tree, {"argocd/web-prod.yaml": argo_remote_app(url, "values-prod.yaml")})
    rendered, findings = render_tree(tree, config, secret_key=KEY)
    assert [(f.rule, f.severity.value) for f in findings] == [("render.helm", "notice")]
    assert "inside chart `web`" in findings[0].message


def _chart_archive() -> bytes:
    """The web chart as a .tgz, the same bytes on every call (no gzip time stamp)."""
    archive = io.BytesIO()
    with gzip.GzipFile(fileobj=archive, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        tar.add(CHARTS / "web", arcname="web")
    return archive.getvalue()


@pytest.fixture
def oci_registry(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A small OCI registry on loopback (the distribution API's pull endpoints: ``/v2/``, manifests
    by tag, blobs by digest) holding chart ``charts/web:1.4.0`` as Helm pushes it."""
    chart = _chart_archive()
    config = json.dumps({"name": "web", "version": "1.4.0", "apiVersion": "v2"}).encode()
    blobs = {f"sha256:{hashlib.sha256(b).hexdigest()}": b for b in (chart, config)}
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": helm_fetch.OCI_MANIFEST,
            "config": {
                "mediaType": helm_fetch.HELM_CONFIG,
                "digest": f"sha256:{hashlib.sha256(config).hexdigest()}",
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": helm_fetch.HELM_CHART_LAYER,
                    "digest": f"sha256:{hashlib.sha256(chart).hexdigest()}",
                    "size": len(chart),
                }
            ],
        }
    ).encode()
    requested: list[str] = []

    def unknown(code: str) -> web.Response:
        return web.json_response({"errors": [{"code": code, "message": code.lower()}]}, status=404)

    async def manifests(request: web.Request) -> web.Response:
        requested.append(request.path)
        if request.match_info["name"] != "charts/web" or request.match_info["ref"] != "1.4.0":
            return unknown("MANIFEST_UNKNOWN")
        assert helm_fetch.OCI_MANIFEST in request.headers.get("Accept", "")
        digest = f"sha256:{hashlib.sha256(manifest).hexdigest()}"
        headers = {"Docker-Content-Digest": digest}
        return web.Response(body=manifest, content_type=helm_fetch.OCI_MANIFEST, headers=headers)

    async def blob(request: web.Request) -> web.Response:
        requested.append(request.path)
        data = blobs.get(request.match_info["digest"])
        if request.match_info["name"] != "charts/web" or data is None:
            return unknown("BLOB_UNKNOWN")
        return web.Response(body=data, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/v2/{name:.+}/manifests/{ref}", manifests)
    app.router.add_get("/v2/{name:.+}/blobs/{digest}", blob)
    with _serve(app, tmp_path) as url:
        yield url.replace("http://", "oci://") + "/charts", requested


def test_charts_from_an_allowed_oci_registry_are_pulled_by_digest_and_rendered(
    tmp_path: Path, oci_registry: tuple[str, list[str]]
) -> None:
    url, requested = oci_registry
    release = RELEASE.replace(
        LOCAL_SOURCE,
        "      chart: web\n      version: 1.4.0\n      sourceRef: {kind: HelmRepository, name: charts}",
    )
    tree = flux_tree(tmp_path / "repo", release)
    write(
        tree,
        {
            "apps/prod/repository.yaml": (
                "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\n"
                f"metadata: {{name: charts}}\nspec: {{type: oci, url: {url}}}\n"
            ),
            "apps/prod/kustomization.yaml": KUSTOMIZATION.replace("db.yaml]", "db.yaml, repository.yaml]"),
            "argocd/web-prod.yaml": argo_remote_app(url),
            "envs/prod/web.yaml": "database: {host: db.shop}\n",
        },
    )
    argocd = {"repo_urls": ["https://github.com/example-org/fleet.git"]}
    # not allowed: nothing pulled, notices say how to allow the registry
    rendered, findings = render_tree(tree, {"render": {"argocd": argocd}}, secret_key=KEY)
    assert requested == [] and sorted(f.rule for f in findings) == ["render.helm", "render.helm-source"]
    assert all(f"list {url} in `render.helm.repositories`" in f.hint for f in findings)
    config = {"render": {"argocd": argocd, "helm": {"repositories": [url]}}}
    rendered, findings = render_tree(tree, config, secret_key=KEY)
    assert findings == []
    objects = {t.name: by_kind(o) for t, o in rendered}
    assert objects["flux/prod-use1/flux-system/apps"]["Deployment/web"]["spec"]["replicas"] == 3
    assert objects["argocd/web-prod#0"]["Deployment/shop-web"]["spec"]["replicas"] == 5
    layer = f"sha256:{hashlib.sha256(_chart_archive()).hexdigest()}"
    # one manifest per source, one blob download: the second source finds the chart in the cache
    assert sorted(requested) == sorted(
        ["/v2/charts/web/manifests/1.4.0"] * 2 + [f"/v2/charts/web/blobs/{layer}"]
    )
    # a tag the registry does not have: a warning, the release is still diffed
    write(tree, {"apps/prod/release.yaml": release.replace("version: 1.4.0", "version: 9.9.9")})
    rendered, findings = render_tree(tree, config, secret_key=KEY)
    assert [(f.rule, f.severity.value) for f in findings] == [("render.helm", "warning")]
    assert "HelmRelease/web" in {t.name: by_kind(o) for t, o in rendered}["flux/prod-use1/flux-system/apps"]


def test_an_oci_chart_layer_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    chart = _chart_archive()
    wrong = "0" * 64
    manifest = {
        "config": {"mediaType": helm_fetch.HELM_CONFIG},
        "layers": [{"mediaType": helm_fetch.HELM_CHART_LAYER, "digest": f"sha256:{wrong}"}],
    }

    async def manifests(request: web.Request) -> web.Response:
        lie = {"Docker-Content-Digest": f"sha256:{wrong}"} if request.match_info["name"] == "lies" else {}
        return web.json_response(manifest, headers=lie)

    async def blob(request: web.Request) -> web.Response:
        return web.Response(body=chart)

    app = web.Application()
    app.router.add_get("/v2/{name:.+}/manifests/{ref}", manifests)
    app.router.add_get("/v2/{name:.+}/blobs/{digest}", blob)
    with _serve(app, tmp_path) as url:
        registry = url.replace("http://", "oci://")
        with pytest.raises(helm_fetch.HelmFetchFailed, match="is not the manifest's"):
            helm_fetch.fetch_chart(registry, "web", "1.4.0")
        with pytest.raises(helm_fetch.HelmFetchFailed, match=r"the manifest of `lies:1\.4\.0` is not"):
            helm_fetch.fetch_chart(registry, "lies", "1.4.0")
        with pytest.raises(helm_fetch.HelmFetchFailed, match="exact version"):
            helm_fetch.fetch_chart(registry, "web", ">=1.0")
        assert list((tmp_path / "chart-cache").iterdir()) == []


def test_a_flux_oci_repository_chart_ref_is_pulled_when_allowed(
    tmp_path: Path, oci_registry: tuple[str, list[str]]
) -> None:
    url, requested = oci_registry
    release = RELEASE.replace(
        "  chart:\n    spec:\n" + LOCAL_SOURCE + "\n", "  chartRef: {kind: OCIRepository, name: web}\n"
    )
    assert "chartRef" in release
    tree = flux_tree(tmp_path / "repo", release)
    oci = (
        "apiVersion: source.toolkit.fluxcd.io/v1beta2\nkind: OCIRepository\nmetadata: {name: web}\n"
        f"spec: {{url: {url}/web, ref: {{tag: 1.4.0}}, layerSelector: {{operation: copy}}}}\n"
    )
    write(
        tree,
        {
            "apps/prod/oci.yaml": oci,
            "apps/prod/kustomization.yaml": KUSTOMIZATION.replace("db.yaml]", "db.yaml, oci.yaml]"),
        },
    )
    [(_t, objects)], findings = render_tree(tree, {}, secret_key=KEY)
    assert [f.rule for f in findings] == ["render.helm"] and requested == []
    assert f"list {url} in `render.helm.repositories`" in findings[0].hint
    [(_t, objects)], findings = render_tree(
        tree, {"render": {"helm": {"repositories": [url]}}}, secret_key=KEY
    )
    assert findings == [] and by_kind(objects)["Deployment/web"]["spec"]["replicas"] == 3
