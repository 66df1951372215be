"""The layouts real GitOps repositories use, written in their shape (never copied from them).

Each builder returns the files of one layout: Flux's example (``clusters/<env>`` ->
infrastructure controllers and configs -> ``apps/base`` plus overlays with per-environment
HelmRelease patches), multi-tenant Flux (tenants, an OCI source, a tenant's own repository),
Argo CD examples (kustomize, Helm, app of apps), an add-on catalog (ApplicationSets with
cluster generators over labelled cluster secrets and ``$values`` files) and a Flux +
Crossplane fleet with per-cluster flux-system components. For each: a benign change exits 0
with no error, names the right clusters and shows exactly the right objects; a bad one is caught.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.domain.model import Severity
from bot.prchecks.build import CheckResult, build_check
from tests.render.conftest import KEY, commit, git
from tests.support.gitrepo import tree_repo

KUST = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
FLUX_K = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
APP = "apiVersion: argoproj.io/v1alpha1\nkind: Application\n"
SELF = "https://github.com/example/fleet"


def _components(version: str) -> str:
    """A small stand-in for flux-system/gotk-components.yaml (a CRD and the namespace)."""
    return (
        f"# Flux Version: {version}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n"
        "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n"
        "  name: gadgets.example.com\nspec:\n  group: example.com\n  names: {kind: Gadget, plural: gadgets}\n"
        "  scope: Namespaced\n  versions:\n    - name: v1\n      served: true\n      storage: true\n"
        "      schema:\n        openAPIV3Schema:\n          type: object\n"
    )


def _bootstrap(folder: str, version: str = "v2.4.0") -> dict[str, str]:
    """What ``flux bootstrap`` commits in ``folder``/flux-system (syncing ``folder``)."""
    return {
        f"{folder}/flux-system/gotk-components.yaml": _components(version),
        f"{folder}/flux-system/gotk-sync.yaml": (
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: flux-system\n"
            f"  namespace: flux-system\nspec:\n  interval: 1m\n  ref:\n    branch: main\n  url: {SELF}\n---\n"
            f"{FLUX_K}metadata:\n  name: flux-system\n  namespace: flux-system\nspec:\n  interval: 10m\n"
            f"  path: ./{folder}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n"
            "    name: flux-system\n"
        ),
        f"{folder}/flux-system/kustomization.yaml": KUST
        + "resources:\n  - gotk-components.yaml\n  - gotk-sync.yaml\n",
    }


def _flux_ks(
    name: str,
    path: str,
    *,
    source: str = "GitRepository",
    source_name: str = "flux-system",
    ns: str = "flux-system",
) -> str:
    return (
        f"{FLUX_K}metadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  interval: 1h\n  path: {path}\n"
        f"  prune: true\n  sourceRef:\n    kind: {source}\n    name: {source_name}\n"
    )


def _repo(tmp_path: Path, files: Mapping[str, str]) -> Path:
    return tree_repo(tmp_path / "repo", files).path


def _pr(repo: Path, name: str, files: Mapping[str, str | None]) -> CheckResult:
    git(repo, "checkout", "-q", "-b", name, "main")
    commit(repo, files, name)
    git(repo, "checkout", "-q", "main")
    return build_check(repo, "main", name, secret_key=KEY)


def _changes(result: CheckResult) -> set[tuple[str, str, str, str]]:
    """(cluster, action, kind, name) of every object change."""
    return {(c.cluster, c.action, c.kind, c.name) for c in result.report.changes}


def _errors(result: CheckResult) -> list[str]:
    return [f"{f.rule} {f.path}: {f.message}" for f in result.report.findings if f.severity is Severity.ERROR]


def _notices(result: CheckResult, rule: str) -> list[str]:
    return [f.message for f in result.report.findings if f.rule == rule]


# ---------------------------------------------------------------- Flux's example repository


def flux_example() -> dict[str, str]:
    files: dict[str, str] = {}
    for env in ("staging", "production"):
        files |= _bootstrap(f"clusters/{env}")
        files[f"clusters/{env}/infrastructure.yaml"] = (
            _flux_ks("infra-controllers", "./infrastructure/controllers")
            + "---\n"
            + _flux_ks("infra-configs", "./infrastructure/configs")
            + "  dependsOn:\n    - name: infra-controllers\n"
        )
        files[f"clusters/{env}/apps.yaml"] = (
            _flux_ks("apps", f"./apps/{env}") + "  dependsOn:\n    - name: infra-configs\n"
        )
        files[f"apps/{env}/kustomization.yaml"] = (
            KUST + "resources:\n  - ../base/podinfo\npatches:\n  - target:\n      kind: HelmRelease\n"
            "      name: podinfo\n    patch: |\n      - op: add\n        path: /spec/values\n"
            f"        value:\n          ingress:\n            hosts: [podinfo.{env}.example.com]\n"
        )
    files |= {
        "infrastructure/controllers/kustomization.yaml": KUST + "resources:\n  - cert-manager.yaml\n",
        "infrastructure/controllers/cert-manager.yaml": (
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cert-manager\n---\n"
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: cert-manager\n"
            "  namespace: cert-manager\nspec:\n  interval: 24h\n  url: https://charts.jetstack.io\n---\n"
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: cert-manager\n"
            "  namespace: cert-manager\nspec:\n  interval: 30m\n  chart:\n    spec:\n"
            "      chart: cert-manager\n"
            '      version: "1.x"\n      sourceRef:\n        kind: HelmRepository\n'
            "        name: cert-manager\n"
            "  values:\n    installCRDs: true\n"
        ),
        "infrastructure/configs/kustomization.yaml": KUST + "resources:\n  - issuer.yaml\n",
        "infrastructure/configs/issuer.yaml": (
            "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: letsencrypt\nspec:\n"
            "  acme:\n    server: https://acme-staging-v02.api.letsencrypt.org/directory\n"
            "    privateKeySecretRef:\n      name: letsencrypt\n    solvers:\n      - http01:\n"
            "          ingress:\n            class: nginx\n"
        ),
        "apps/base/podinfo/kustomization.yaml": KUST
        + "namespace: podinfo\nresources:\n  - namespace.yaml\n  - release.yaml\n",
        "apps/base/podinfo/namespace.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: podinfo\n",
        "apps/base/podinfo/release.yaml": (
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n"
            "  name: podinfo\nspec:\n"
            "  interval: 5m\n  url: https://stefanprodan.github.io/podinfo\n---\n"
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: podinfo\nspec:\n"
            "  interval: 50m\n  chart:\n    spec:\n      chart: podinfo\n      version: '>=6.0.0'\n"
            "      sourceRef:\n        kind: HelmRepository\n        name: podinfo\n"
        ),
    }
    return files


def test_flux_example_a_production_values_change_reaches_production_only(tmp_path: Path) -> None:
    files = flux_example()
    repo = _repo(tmp_path, files)
    overlay = "apps/production/kustomization.yaml"
    result = _pr(repo, "values", {overlay: files[overlay].replace("podinfo.production", "app.production")})
    assert _errors(result) == []
    assert _changes(result) == {("production", "changed", "HelmRelease", "podinfo")}
    assert result.comment_parts()[0].count("on 1 cluster") == 1
    assert "app.production.example.com" in result.report.changes[0].diff
    # the base every environment uses reaches both clusters
    shared = _pr(
        repo,
        "base",
        {"apps/base/podinfo/release.yaml": files["apps/base/podinfo/release.yaml"].replace("50m", "10m")},
    )
    assert _changes(shared) == {(c, "changed", "HelmRelease", "podinfo") for c in ("staging", "production")}
    assert {s.cluster for s in shared.diff.statuses} == {"staging", "production"}


def test_flux_example_a_broken_overlay_is_caught_and_a_deleted_cluster_shows_removals(tmp_path: Path) -> None:
    files = flux_example()
    repo = _repo(tmp_path, files)
    overlay = "apps/staging/kustomization.yaml"
    bad = _pr(repo, "bad", {overlay: files[overlay].replace("../base/podinfo", "../base/podinf")})
    assert any(f.rule == "render.kustomize" and f.blocking for f in bad.report.findings)
    gone = _pr(repo, "gone", {rel: None for rel in files if rel.startswith("clusters/staging/")})
    actions = {(cluster, action) for cluster, action, _kind, _name in _changes(gone)}
    assert actions == {("staging", "removed")}
    assert ("staging", "removed", "Kustomization", "apps") in _changes(gone)


# ---------------------------------------------------------------- multi-tenant Flux


def multi_tenant() -> dict[str, str]:
    files: dict[str, str] = {}
    for env in ("staging", "production"):
        files |= _bootstrap(f"clusters/{env}")
        files[f"clusters/{env}/infrastructure.yaml"] = _flux_ks("infrastructure", "./infrastructure")
        files[f"clusters/{env}/tenants.yaml"] = (
            _flux_ks("tenants", f"./tenants/{env}") + "  dependsOn:\n    - name: infrastructure\n"
        )
        files[f"tenants/{env}/kustomization.yaml"] = (
            KUST + "resources:\n  - ../base/dev-team\npatches:\n  - target:\n      kind: Kustomization\n"
            "      name: dev-team\n    patch: |\n      - op: add\n"
            f"        path: /spec/path\n        value: ./{env}\n"
        )
    files |= {
        "infrastructure/kustomization.yaml": KUST + "resources:\n  - kyverno.yaml\n",
        "infrastructure/kyverno.yaml": (
            "apiVersion: source.toolkit.fluxcd.io/v1beta2\nkind: OCIRepository\nmetadata:\n  name: kyverno\n"
            "  namespace: flux-system\nspec:\n  interval: 2h\n"
            "  url: oci://ghcr.io/kyverno/manifests/kyverno\n"
            '  ref:\n    tag: "v1.12.0"\n---\n'
            + _flux_ks("kyverno", "./", source="OCIRepository", source_name="kyverno")
        ),
        "tenants/base/dev-team/kustomization.yaml": KUST
        + "namespace: apps\nresources:\n  - rbac.yaml\n  - sync.yaml\n",
        "tenants/base/dev-team/rbac.yaml": (
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n---\n"
            "apiVersion: v1\nkind: ServiceAccount\n"
            "metadata:\n  name: dev-team\n"
        ),
        "tenants/base/dev-team/sync.yaml": (
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n"
            "  name: dev-team\nspec:\n"
            f"  interval: 1m\n  url: {SELF}\n  ref:\n    branch: dev-team\n---\n"
            + _flux_ks("dev-team", "./", source_name="dev-team", ns="apps")
            + "  serviceAccountName: dev-team\n"
        ),
    }
    return files


def test_multi_tenant_sources_are_never_rendered_from_this_repository(tmp_path: Path) -> None:
    files = multi_tenant()
    repo = _repo(tmp_path, files)
    sync = "tenants/base/dev-team/sync.yaml"
    result = _pr(repo, "tenant", {sync: files[sync].replace("interval: 1h", "interval: 2h")})
    assert _errors(result) == []
    # the tenant's Kustomization is shown once per cluster, patched, as spec: nothing from "./"
    assert _changes(result) == {
        (c, "changed", "Kustomization", "dev-team") for c in ("staging", "production")
    }
    unrendered = _notices(result, "render.unrendered")
    assert len(unrendered) == 2 and all(
        "GitRepository apps/dev-team" in m and "branch=dev-team" in m for m in unrendered
    )
    assert any("flux/staging/apps/dev-team" in m for m in unrendered)
    oci = _pr(
        repo,
        "oci",
        {"infrastructure/kyverno.yaml": files["infrastructure/kyverno.yaml"].replace("v1.12.0", "v1.13.0")},
    )
    assert _changes(oci) == {(c, "changed", "OCIRepository", "kyverno") for c in ("staging", "production")}
    # the OCI-sourced Kustomization (path "./") is never rendered from this repository's root
    kyverno = [t for t in oci.diff.statuses if t.target.endswith("/flux-system/kyverno")]
    assert len(kyverno) == 2 and all(t.objects_head == 0 for t in kyverno)


def test_multi_tenant_a_patch_file_is_a_fragment_not_a_kustomization_of_its_own(tmp_path: Path) -> None:
    # flux2-multi-tenancy's shape: tenants/<env>/dev-team-patch.yaml (no sourceRef) listed under `patches`
    files = multi_tenant()
    for env in ("staging", "production"):
        files[f"tenants/{env}/kustomization.yaml"] = (
            KUST + "resources:\n  - ../base/dev-team\npatches:\n  - path: dev-team-patch.yaml\n"
        )
        files[f"tenants/{env}/dev-team-patch.yaml"] = (
            FLUX_K + f"metadata:\n  name: dev-team\n  namespace: apps\nspec:\n  path: ./{env}\n"
        )
    repo = _repo(tmp_path, files)
    patch = "tenants/production/dev-team-patch.yaml"
    result = _pr(repo, "patch", {patch: files[patch].replace("./production", "./prod")})
    assert _errors(result) == []
    assert [f.message for f in result.report.findings if f.rule == "render.path"] == []
    assert _changes(result) == {("production", "changed", "Kustomization", "dev-team")}


def test_multi_tenant_a_plaintext_secret_in_a_tenant_is_caught(tmp_path: Path) -> None:
    files = multi_tenant()
    repo = _repo(tmp_path, files)
    rbac = "tenants/base/dev-team/rbac.yaml"
    bad = _pr(
        repo,
        "secret",
        {
            rbac: files[rbac]
            + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: t\nstringData:\n  token: abc\n"
        },
    )
    assert any(f.rule == "secrets.plaintext" and f.blocking for f in bad.report.findings)


# ---------------------------------------------------------------- Argo CD examples (app of apps)


def argocd_examples() -> dict[str, str]:
    def app(name: str, path: str, *, repo: str = SELF, rev: str = "HEAD", extra: str = "") -> str:
        return (
            f"{APP}metadata:\n  name: {name}\n  namespace: argocd\nspec:\n  project: default\n"
            f"  destination:\n    server: https://kubernetes.default.svc\n    namespace: {name}\n"
            f"  source:\n    repoURL: {repo}\n    targetRevision: {rev}\n    path: {path}\n{extra}"
        )

    deploy = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: guestbook-ui\nspec:\n  replicas: 1\n"
        "  template:\n    spec:\n      containers:\n        - name: ui\n"
        "          image: gcr.io/heptio-images/ks-guestbook-demo:0.2\n"
    )
    return {
        "root.yaml": app("root", "apps"),
        "apps/guestbook.yaml": app("guestbook", "guestbook"),
        "apps/kustomize-guestbook.yaml": app("kustomize-guestbook", "kustomize-guestbook"),
        "apps/elsewhere.yaml": app("elsewhere", "guestbook", repo="https://github.com/other/apps.git"),
        "apps/pinned.yaml": app("pinned", "guestbook", rev="v0.1.0"),
        "guestbook/guestbook-ui-deployment.yaml": deploy,
        "guestbook/guestbook-ui-svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n"
        "  name: guestbook-ui\nspec:\n  ports:\n    - port: 80\n",
        "kustomize-guestbook/kustomization.yaml": KUST
        + "namePrefix: kustomize-\nresources:\n  - guestbook-ui-deployment.yaml\n",
        "kustomize-guestbook/guestbook-ui-deployment.yaml": deploy,
    }


def test_argocd_examples_render_this_repository_and_diff_other_sources_as_spec(tmp_path: Path) -> None:
    files = argocd_examples()
    repo = _repo(tmp_path, files)
    d = "guestbook/guestbook-ui-deployment.yaml"
    result = _pr(repo, "replicas", {d: files[d].replace("replicas: 1", "replicas: 2")})
    assert _errors(result) == []
    # rendered for the two Applications that read this repository at this revision, on the hub
    assert {(c.target, c.cluster, c.kind) for c in result.report.changes} == {
        ("argocd/guestbook", "in-cluster", "Deployment")
    }
    moved = _pr(
        repo,
        "moved",
        {"apps/elsewhere.yaml": files["apps/elsewhere.yaml"].replace("path: guestbook", "path: ui")},
    )
    assert any(
        "argocd/elsewhere" in m and "https://github.com/other/apps.git" in m
        for m in _notices(moved, "render.unrendered")
    )
    assert ("in-cluster", "changed", "Application", "elsewhere") in _changes(moved)
    assert not any(c.kind == "Deployment" for c in moved.report.changes)


def test_argocd_examples_a_broken_kustomization_is_caught(tmp_path: Path) -> None:
    files = argocd_examples()
    repo = _repo(tmp_path, files)
    k = "kustomize-guestbook/kustomization.yaml"
    bad = _pr(repo, "bad", {k: files[k].replace("guestbook-ui-deployment.yaml", "missing.yaml")})
    assert any(f.rule == "render.kustomize" and f.blocking for f in bad.report.findings)


def test_argocd_examples_a_helm_and_kustomize_plugin_folder_is_a_notice(tmp_path: Path) -> None:
    # argocd-example-apps' plugins/kustomized-helm: a chart whose kustomization reads the all.yaml
    # that a config-management plugin writes with `helm template` at deploy time
    files = argocd_examples()
    repo = _repo(tmp_path, files)
    plugin = {
        "plugins/kustomized-helm/Chart.yaml": "apiVersion: v2\nname: kustomized-helm\nversion: 0.1.0\n",
        "plugins/kustomized-helm/kustomization.yaml": "namePrefix: kustomize-\nresources:\n- ./all.yaml\n",
    }
    result = _pr(repo, "plugin", plugin)
    assert _errors(result) == []
    [notice] = _notices(result, "render.kustomize")
    assert "config-management plugin" in notice and "plugins/kustomized-helm" in notice


# ---------------------------------------------------------------- add-on catalog (ApplicationSets)


def addon_catalog() -> dict[str, str]:
    def secret(name: str, env: str, metrics: bool) -> str:
        return (
            f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: argocd\n  labels:\n"
            f"    argocd.argoproj.io/secret-type: cluster\n    environment: {env}\n"
            f'    enable_metrics_server: "{str(metrics).lower()}"\n'
            f"  annotations:\n    addons_repo_url: {SELF}\n"
            f"type: Opaque\nstringData:\n  name: {name}\n  server: https://{name}.eks.example.com\n"
        )

    appset = (
        "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: addons-metrics-server\n"
        "  namespace: argocd\nspec:\n  goTemplate: true\n  generators:\n    - clusters:\n        selector:\n"
        "          matchLabels:\n            enable_metrics_server: 'true'\n  template:\n"
        "    metadata:\n      name: 'metrics-server-{{.name}}'\n    spec:\n      project: default\n"
        "      destination:\n        name: '{{.name}}'\n        namespace: kube-system\n      sources:\n"
        "        - repoURL: https://kubernetes-sigs.github.io/metrics-server\n"
        "          chart: metrics-server\n"
        "          targetRevision: 3.12.1\n          helm:\n            valueFiles:\n"
        "              - $values/addons/metrics-server/values.yaml\n"
        "        - repoURL: '{{.metadata.annotations.addons_repo_url}}'\n          targetRevision: HEAD\n"
        "          ref: values\n"
    )
    return {
        "clusters/dev-use1.yaml": secret("dev-use1", "dev", True),
        "clusters/prod-use1.yaml": secret("prod-use1", "prod", True),
        "clusters/prod-euw1.yaml": secret("prod-euw1", "prod", False),
        "bootstrap/metrics-server.yaml": appset,
        "bootstrap/karpenter.yaml": appset.replace("metrics-server", "karpenter").replace(
            "enable_metrics_server", "enable_karpenter"
        ),
        "addons/metrics-server/values.yaml": "args:\n  - --kubelet-insecure-tls\n",
    }


def test_addon_catalog_a_values_file_change_names_every_target_it_reaches(tmp_path: Path) -> None:
    files = addon_catalog()
    repo = _repo(tmp_path, files)
    v = "addons/metrics-server/values.yaml"
    result = _pr(repo, "values", {v: files[v] + "replicas: 2\n"})
    assert _errors(result) == []
    notices = _notices(result, "render.unrendered")
    assert sorted(m.split(":")[0] for m in notices) == [
        "target argocd/metrics-server-dev-use1",
        "target argocd/metrics-server-prod-use1",
    ]
    assert all("addons/metrics-server/values.yaml" in m for m in notices)


def test_addon_catalog_a_cluster_generator_matching_no_cluster_gets_a_notice(tmp_path: Path) -> None:
    files = addon_catalog()
    repo = _repo(tmp_path, files)
    k = "bootstrap/karpenter.yaml"
    result = _pr(repo, "nothing", {k: files[k].replace("3.12.1", "3.13.0")})
    assert _errors(result) == []
    (notice,) = _notices(result, "render.unrendered")
    assert "applicationset/addons-karpenter" in notice and "matches no cluster" in notice
    values = _pr(repo, "values-only", {"addons/karpenter/values.yaml": "replicas: 2\n"})
    (notice,) = _notices(values, "render.unrendered")
    assert "applicationset/addons-karpenter" in notice and "`addons/karpenter/values.yaml`" in notice
    label = _pr(
        repo,
        "label",
        {"clusters/prod-euw1.yaml": files["clusters/prod-euw1.yaml"].replace('"false"', '"true"')},
    )
    assert "prod-euw1" in {t.cluster for t in label.diff.statuses if t.state == "added"}


def test_addon_catalog_a_plaintext_secret_value_is_caught(tmp_path: Path) -> None:
    files = addon_catalog()
    repo = _repo(tmp_path, files)
    bad = _pr(repo, "key", {"addons/metrics-server/values.yaml": "awsAccessKeyId: AKIAZ7Q3J5L2M4N6P8R1\n"})
    assert any(f.rule == "secrets.aws-key" and f.blocking for f in bad.report.findings)


# ---------------------------------------------------------------- Flux + Crossplane fleet


def crossplane_fleet() -> dict[str, str]:
    files: dict[str, str] = {}
    for i, (env, name) in enumerate((("dev", "dev-use1"), ("prod", "prod-use1"), ("prod", "prod-euw1"))):
        folder = f"clusters/{env}/{name}"
        files |= _bootstrap(folder, f"v2.{i}.0")
        files[f"{folder}/infrastructure.yaml"] = _flux_ks("crossplane", "./infrastructure/crossplane")
        files[f"{folder}/network.yaml"] = (
            "apiVersion: ec2.aws.upbound.io/v1beta1\nkind: VPC\nmetadata:\n"
            f"  name: {name}-vpc\nspec:\n  forProvider:\n    region: us-east-1\n"
            f"    cidrBlock: 10.{i}.0.0/16\n"
        )
    files["infrastructure/crossplane/kustomization.yaml"] = KUST + "resources:\n  - provider.yaml\n"
    files["infrastructure/crossplane/provider.yaml"] = (
        "apiVersion: pkg.crossplane.io/v1\nkind: Provider\nmetadata:\n  name: provider-aws-ec2\nspec:\n"
        "  package: xpkg.upbound.io/upbound/provider-aws-ec2:v1.1.0\n"
    )
    return files


def test_crossplane_fleet_a_one_cluster_change_names_that_cluster_and_env(tmp_path: Path) -> None:
    files = crossplane_fleet()
    repo = _repo(tmp_path, files)
    net = "clusters/prod/prod-euw1/network.yaml"
    result = _pr(repo, "cidr", {net: files[net].replace("10.2.0.0/16", "10.20.0.0/16")})
    assert _errors(result) == []
    assert _changes(result) == {("prod-euw1", "changed", "VPC", "prod-euw1-vpc")}
    assert {(c.env, c.cluster) for c in result.report.changes} == {("prod", "prod-euw1")}
    provider = "infrastructure/crossplane/provider.yaml"
    shared = _pr(repo, "provider", {provider: files[provider].replace("v1.1.0", "v1.2.0")})
    assert _changes(shared) == {
        (c, "changed", "Provider", "provider-aws-ec2") for c in ("dev-use1", "prod-use1", "prod-euw1")
    }
    assert "on 3 clusters" in shared.comment_parts()[0]


def test_crossplane_fleet_a_private_key_is_caught(tmp_path: Path) -> None:
    files = crossplane_fleet()
    repo = _repo(tmp_path, files)
    net = "clusters/dev/dev-use1/network.yaml"
    key = "-----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEA\\n-----END RSA PRIVATE KEY-----"
    bad = _pr(repo, "key", {net: files[net] + f'    note: "{key}"\n'})
    assert any(f.rule == "secrets.private-key" and f.blocking for f in bad.report.findings)


def test_render_target_globs_match_cluster_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = _repo(tmp_path, crossplane_fleet())
    code = main(["render", "--repo", str(repo), "--ref", "main", "--target", "prod-*", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {t["cluster"] for t in out} == {"prod-use1", "prod-euw1"}
    assert {t["target"] for t in out} >= {
        "flux/prod-use1/flux-system/flux-system",
        "flux/prod-euw1/flux-system/crossplane",
    }
    code = main(["render", "--repo", str(repo), "--ref", "main", "--target", "qa-*"])
    assert code == 2 and "dev-use1" in capsys.readouterr().err  # the known clusters are listed
