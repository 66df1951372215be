"""No false blocks on the layouts real GitOps repositories use: patches, Helm charts, complete CRD sets.

The fixtures under tests/fixtures/validate/layouts are written in the shape of
fluxcd/flux2-kustomize-helm-example (HelmReleases patched per environment with ``patches``,
``patchesStrategicMerge`` and a JSON 6902 list, OCIRepository sources) and
argoproj/argocd-example-apps (an app-of-apps Helm chart, a Helm chart, a kustomize app whose
Argo CD Application patches it). Each test commits a change and runs the real render
(``kubectl kustomize``) and the validator through ``build_check``.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest

from bot import crds
from bot.domain.model import Finding, Severity
from bot.domain.validate import validate
from bot.prchecks.build import CheckResult, build_check
from tests.conftest import FIXTURES
from tests.render.conftest import KEY, commit, git
from tests.support.gitrepo import tree_repo
from tests.validate.helpers import TODAY, run

LAYOUTS = FIXTURES / "validate" / "layouts"
CONFIG = "version: 1\ncluster_requests:\n  paths: ['clusters/**']\n"


def _repo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    shutil.copytree(LAYOUTS / name, path)
    (path / ".github").mkdir()
    (path / ".github" / "gitops-bot.yml").write_text(CONFIG)
    return tree_repo(path).path


def _check(repo: Path, branch: str, files: dict[str, str | None]) -> CheckResult:
    git(repo, "checkout", "-q", "-b", branch, "main")
    commit(repo, files, branch)
    git(repo, "checkout", "-q", "main")
    return build_check(
        repo, "main", branch, checkers=[functools.partial(validate, today=TODAY)], secret_key=KEY
    )


def _errors(result: CheckResult) -> list[Finding]:
    return [f for f in result.report.findings if f.severity is Severity.ERROR]


def _edit(repo: Path, rel: str, old: str, new: str) -> dict[str, str | None]:
    text = (repo / rel).read_text()
    assert old in text
    return {rel: text.replace(old, new)}


@pytest.fixture
def flux(tmp_path: Path) -> Path:
    return _repo(tmp_path, "flux")


@pytest.fixture
def argocd(tmp_path: Path) -> Path:
    return _repo(tmp_path, "argocd")


def test_helmrelease_patches_per_environment_are_not_whole_objects(flux: Path) -> None:
    files = {
        **_edit(flux, "apps/staging/podinfo-values.yaml", "podinfo.staging", "podinfo.staging.example"),
        **_edit(flux, "apps/production/podinfo-values.yaml", '">=1.0.0"', '">=6.0.0"'),
        **_edit(flux, "apps/staging/podinfo-ingress.yaml", "traefik", "nginx-internal"),
    }
    result = _check(flux, "benign-patches", files)
    assert _errors(result) == [] and not result.report.blocking
    assert not [f for f in result.report.findings if f.rule == "schema"]


def test_a_patch_that_breaks_the_rendered_object_is_caught_at_the_patch(flux: Path) -> None:
    rel = "apps/staging/podinfo-values.yaml"
    files = _edit(flux, rel, "  test:\n    enable: true\n", "  test:\n    enable: true\n  valuez: {}\n")
    result = _check(flux, "bad-patch", files)
    [error] = _errors(result)
    assert error.rule == "schema" and error.path == rel and error.line == 12
    assert "after patching" in error.message and "'valuez'" in error.message
    assert result.report.blocking


def test_patch_files_are_read_from_the_kustomizations_not_their_names(flux: Path) -> None:
    """A file named like a patch but listed in ``resources`` is a whole object and is validated whole."""
    files = {
        "apps/base/podinfo/podinfo-values.yaml": "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\n"
        "metadata: {name: extra, namespace: podinfo}\nspec: {values: {}}\n",
        **_edit(
            flux,
            "apps/base/podinfo/kustomization.yaml",
            "  - release.yaml\n",
            "  - release.yaml\n  - podinfo-values.yaml\n",
        ),
    }
    result = _check(flux, "whole-object", files)
    errors = _errors(result)
    assert errors and {f.path for f in errors} == {"apps/base/podinfo/podinfo-values.yaml"}
    assert any("'interval' is a required property" in f.message for f in errors)


def test_every_flux_source_kind_is_known(flux: Path) -> None:
    rel = "infrastructure/controllers/cert-manager.yaml"
    result = _check(flux, "oci", _edit(flux, rel, 'semver: "1.x"', 'semver: "1.16.x"'))
    assert [f for f in result.report.findings if f.rule.startswith("schema")] == []
    bad = _check(
        flux, "oci-bad", _edit(flux, rel, "  interval: 24h\n", "  interval: 24h\n  insecurre: true\n")
    )
    [error] = _errors(bad)
    assert error.rule == "schema" and "'insecurre'" in error.message and error.path == rel


def test_helm_chart_templates_are_not_parsed_as_yaml(argocd: Path) -> None:
    files = {
        **_edit(argocd, "apps/templates/applications.yaml", "  project: default", "  project: guestbook"),
        **_edit(
            argocd,
            "helm-guestbook/templates/deployment.yaml",
            "spec:\n  replicas",
            "spec:\n  minReadySeconds: 5\n  replicas",
        ),
    }
    result = _check(argocd, "templates", files)
    assert not [f for f in result.report.findings if f.rule.startswith("yaml.")]
    assert _errors(result) == []


def test_broken_chart_values_are_still_caught(argocd: Path) -> None:
    result = _check(argocd, "bad-values", {"helm-guestbook/values.yaml": "replicaCount: [1\n"})
    assert [(f.rule, f.path) for f in _errors(result)][:1] == [("yaml.syntax", "helm-guestbook/values.yaml")]


def test_argocd_application_patch_is_judged_through_the_render(argocd: Path) -> None:
    rel = "kustomize-guestbook/patches/replicas.yaml"
    result = _check(argocd, "app-patch", _edit(argocd, rel, "replicas: 3", "replicas: 5"))
    assert _errors(result) == []
    assert not [f for f in result.report.findings if f.path == rel and f.rule == "schema"]


def test_bundled_index_matches_the_files_and_holds_every_kind_of_each_project() -> None:
    assert crds.bundled_index() == crds.scan_index()
    kinds = set(crds.bundled_index())
    expected = (
        {
            ("source.toolkit.fluxcd.io", k)
            for k in (
                "GitRepository",
                "HelmRepository",
                "OCIRepository",
                "Bucket",
                "HelmChart",
                "ExternalArtifact",
            )
        }
        | {
            ("notification.toolkit.fluxcd.io", "Alert"),
            ("notification.toolkit.fluxcd.io", "Provider"),
            ("notification.toolkit.fluxcd.io", "Receiver"),
            ("image.toolkit.fluxcd.io", "ImageUpdateAutomation"),
            ("image.toolkit.fluxcd.io", "ImagePolicy"),
            ("image.toolkit.fluxcd.io", "ImageRepository"),
            ("argoproj.io", "Rollout"),
            ("argoproj.io", "AnalysisTemplate"),
            ("argoproj.io", "ClusterAnalysisTemplate"),
            ("argoproj.io", "AnalysisRun"),
            ("argoproj.io", "Experiment"),
            ("external-secrets.io", "ClusterExternalSecret"),
            ("external-secrets.io", "PushSecret"),
            ("generators.external-secrets.io", "Password"),
            ("generators.external-secrets.io", "ECRAuthorizationToken"),
            ("templates.gatekeeper.sh", "ConstraintTemplate"),
            ("mutations.gatekeeper.sh", "Assign"),
            ("config.gatekeeper.sh", "Config"),
        }
        | {
            ("eks.services.k8s.aws", k)
            for k in (
                "Cluster",
                "Nodegroup",
                "Addon",
                "AccessEntry",
                "PodIdentityAssociation",
                "FargateProfile",
                "IdentityProviderConfig",
            )
        }
        | {
            ("eks.aws.crossplane.io", k)
            for k in ("Cluster", "NodeGroup", "Addon", "FargateProfile", "IdentityProviderConfig")
        }
    )
    assert expected - kinds == set()


@pytest.mark.parametrize(
    ("api", "kind", "spec"),
    [
        (
            "eks.services.k8s.aws/v1alpha1",
            "PodIdentityAssociation",
            "clusterName: c\n  namespace: n\n  serviceAccount: s\n  roleARN: arn:aws:iam::1:role/r",
        ),
        (
            "eks.services.k8s.aws/v1alpha1",
            "AccessEntry",
            "clusterName: c\n  principalARN: arn:aws:iam::111111111111:role/r",
        ),
        (
            "argoproj.io/v1alpha1",
            "Rollout",
            "selector: {matchLabels: {app: a}}\n  template: {metadata: {labels: {app: a}}}\n"
            "  strategy: {canary: {steps: [{setWeight: 20}, {pause: {}}]}}",
        ),
        (
            "external-secrets.io/v1",
            "ClusterExternalSecret",
            "namespaceSelectors: [{matchLabels: {team: a}}]\n"
            "  externalSecretSpec: {secretStoreRef: {name: s, kind: ClusterSecretStore}}",
        ),
    ],
)
def test_kinds_added_to_the_bundled_sets_validate(tmp_path: Path, api: str, kind: str, spec: str) -> None:
    text = f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: x, namespace: y}}\nspec:\n  {spec}\n"
    assert run(tmp_path / "ok", {"x.yaml": text}, config={"version": 1}) == []
    [bad] = run(
        tmp_path / "bad",
        {"x.yaml": text.replace("spec:\n", "spec:\n  colour: blue\n")},
        config={"version": 1},
    )
    assert bad.rule == "schema" and bad.severity is Severity.ERROR and "'colour'" in bad.message


def test_an_unknown_kind_is_a_notice_with_a_hint_and_no_wrong_suggestion(tmp_path: Path) -> None:
    text = "apiVersion: eks.services.k8s.aws/v1alpha1\nkind: ClusterConfigThing\nmetadata: {name: x}\n"
    [finding] = run(tmp_path, {"x.yaml": text}, config={"version": 1})
    assert finding.severity is Severity.NOTICE and "Did you mean" not in finding.hint
    assert "commit the CustomResourceDefinition of ClusterConfigThing" in finding.hint
    typo = text.replace("ClusterConfigThing", "Podidentityassociation")
    [finding] = run(tmp_path / "2", {"x.yaml": typo}, config={"version": 1})
    assert finding.severity is Severity.NOTICE and "Did you mean 'PodIdentityAssociation'?" in finding.hint


OLD_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: clusters.eks.services.k8s.aws}
spec:
  group: eks.services.k8s.aws
  names: {kind: Cluster, plural: clusters}
  scope: Namespaced
  versions:
    - name: v1alpha1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                name: {type: string}
                roleARN: {type: string}
"""


def test_an_object_valid_for_any_known_definition_of_its_kind_passes(tmp_path: Path) -> None:
    """A monorepo vendoring an older CRD (or two examples defining one kro kind) is not a false block."""
    cluster = (
        "apiVersion: eks.services.k8s.aws/v1alpha1\nkind: Cluster\nmetadata: {name: payments-dev}\n"
        "spec:\n  name: payments-dev\n  roleARN: arn:aws:iam::1:role/r\n"
        "  resourcesVPCConfig: {subnetIDs: [a, b]}\n"
        "  computeConfig: {enabled: true}\n"
    )
    files = {"vendor/old-ack/crd.yaml": OLD_CRD, "clusters/c.yaml": cluster}
    assert run(tmp_path / "ok", files, config={"version": 1}, changed=["clusters/c.yaml"]) == []
    bad = {**files, "clusters/c.yaml": cluster.replace("computeConfig", "computeConfigz")}
    [error] = run(tmp_path / "bad", bad, config={"version": 1}, changed=["clusters/c.yaml"])
    assert error.rule == "schema" and "computeConfigz" in error.message

    def rgd(field: str) -> str:
        return (
            "apiVersion: kro.run/v1alpha1\nkind: ResourceGraphDefinition\nmetadata: {name: web}\n"
            "spec:\n  schema:\n    apiVersion: v1alpha1\n    kind: WebApp\n"
            f"    spec:\n      {field}: string\n  resources: []\n"
        )

    app = "apiVersion: kro.run/v1alpha1\nkind: WebApp\nmetadata: {name: w}\nspec: {image: nginx}\n"
    two = {"a/rgd.yaml": rgd("image"), "b/rgd.yaml": rgd("name"), "app.yaml": app}
    assert run(tmp_path / "rgd", two, config={"version": 1}, changed=["app.yaml"]) == []
    [error] = run(
        tmp_path / "rgd-bad",
        {**two, "app.yaml": app.replace("image", "imag")},
        config={"version": 1},
        changed=["app.yaml"],
    )
    assert error.rule == "schema" and "'imag'" in error.message


def test_trailing_tabs_are_white_space_as_in_yaml_and_kubectl(tmp_path: Path) -> None:
    """argocd-example-apps' kustomize-guestbook service has a tab after each value; kubectl reads it."""
    text = "apiVersion: v1\t\nkind: Service\t\nmetadata:\t\n  name: guestbook-ui\t\n"
    text += "spec:\n  ports:\n  - port: 80\t\n"
    assert run(tmp_path / "ok", {"svc.yaml": text}, config={"version": 1}) == []
    [error] = run(tmp_path / "bad", {"svc.yaml": text.replace("  ports:", "\tports:")}, config={"version": 1})
    assert error.rule == "yaml.syntax"


def test_a_version_only_older_releases_serve_is_a_warning_not_a_block(tmp_path: Path) -> None:
    """fluxcd/flux2-multi-tenancy still writes source.toolkit.fluxcd.io/v1beta2 OCIRepository."""
    text = (
        "apiVersion: source.toolkit.fluxcd.io/v1beta2\nkind: OCIRepository\nmetadata: {name: kyverno}\n"
        "spec: {interval: 1h, url: oci://ghcr.io/kyverno/manifests/kyverno, ref: {semver: 1.x}}\n"
    )
    [finding] = run(tmp_path / "old", {"source.yaml": text}, config={"version": 1})
    assert finding.rule == "schema.version" and finding.severity is Severity.WARNING
    assert "source.toolkit.fluxcd.io/v1" in finding.hint
    own = {
        "crds/oci.yaml": crds.read_text("source.toolkit.fluxcd.io_ocirepositories.yaml"),
        "source.yaml": text,
    }
    [finding] = run(tmp_path / "own", own, config={"version": 1}, changed=["source.yaml"])
    assert finding.rule == "schema.version" and finding.severity is Severity.ERROR


def test_a_file_used_as_a_patch_and_as_a_resource_is_validated_whole(tmp_path: Path) -> None:
    release = (
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: p}\nspec: {values: {}}\n"
    )
    files = {
        "shared/release.yaml": release,
        "a/kustomization.yaml": "resources: [../base]\npatches:\n  - path: ../shared/release.yaml\n",
        "b/kustomization.yaml": "resources:\n  - ../shared/release.yaml\n",
    }
    findings = run(tmp_path / "both", files, config={"version": 1}, changed=["shared/release.yaml"])
    assert any(f.rule == "schema" and "'interval' is a required property" in f.message for f in findings)
    only_patch = {k: v for k, v in files.items() if not k.startswith("b/")}
    findings = run(tmp_path / "patch", only_patch, config={"version": 1}, changed=["shared/release.yaml"])
    assert [f.rule for f in findings] == ["schema.patch"]
