"""``gitops-bot check`` and ``gitops-bot render`` end to end on real git repositories (the example fleet)."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.domain.model import CheckInput, Finding, Severity
from bot.prchecks.build import build_check, build_report
from bot.render_runtime.cache import RenderCache
from bot.render_runtime.engine import compute_diff
from tests.render.conftest import KEY, commit, git
from tests.render.conftest import write as write_tree

MakeRepo = Callable[..., Path]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def fleet(make_repo: MakeRepo) -> Path:
    return make_repo(fleet=True)


def branch(repo: Path, name: str, files: dict[str, str | None]) -> str:
    git(repo, "checkout", "-q", "-b", name)
    sha = commit(repo, files, name)
    git(repo, "checkout", "-q", "main")
    return sha


def test_check_json_for_an_overlay_change(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = "apps/podinfo/overlays/prod/kustomization.yaml"
    text = (fleet / path).read_text().replace("value: 3", "value: 5")
    branch(fleet, "pr", {path: text})
    code, out, _ = run_cli(
        capsys, "check", "--repo", str(fleet), "--base", "main", "--head", "pr", "--format", "json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["blocking"] is False and data["findings"] == []
    assert {(c["target"], c["cluster"], c["env"], c["kind"], c["action"]) for c in data["changes"]} == {
        ("argocd/podinfo-prod-use1", "prod-use1", "prod", "Deployment", "changed"),
        ("argocd/podinfo-prod-euw1", "prod-euw1", "prod", "Deployment", "changed"),
    }
    change = data["changes"][0]
    assert set(change) >= {
        "target",
        "cluster",
        "env",
        "apiVersion",
        "kind",
        "namespace",
        "name",
        "action",
        "diff",
    }
    assert change["namespace"] == "podinfo" and "-  replicas: 3\n+  replicas: 5\n" in change["diff"]
    assert data["targets"]["rendered"] == 2  # only the two Applications reading that overlay


def test_check_markdown_for_a_common_addon_change(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = "common/addons/cert-manager.yaml"
    branch(fleet, "pr", {path: (fleet / path).read_text().replace("v1.15.3", "v1.16.0")})
    code, out, _ = run_cli(capsys, "check", "--repo", str(fleet), "--base", "main", "--head", "pr")
    assert code == 0
    assert out.startswith("<!-- gitops-bot:diff part 1/1 -->")
    assert "**6 objects change on 6 clusters (6 changed)**" in out
    assert "| prod | prod-euw1 | 1 | 0 | 1 | 0 |" in out
    assert "-      version: v1.15.3\n+      version: v1.16.0" in out
    assert "same change on 5 more target(s)" in out


def test_cluster_info_change_reaches_the_substituted_helm_values(fleet: Path) -> None:
    path = "clusters/prod/prod-euw1/flux/cluster-info.yaml"
    head = branch(fleet, "pr", {path: (fleet / path).read_text().replace('"444444444444"', '"555555555555"')})
    report = build_report(fleet, "main", head, secret_key=KEY)
    targets = {c.target for c in report.changes}
    assert targets == {"flux/prod-euw1/flux-system/addons", "flux/prod-euw1/flux-system/flux-system"}
    helm = [c for c in report.changes if c.kind == "HelmRelease"]
    assert helm and all("555555555555" in c.diff for c in helm)


def test_new_cluster_request_shows_new_applications(fleet: Path) -> None:
    files = {
        "clusters/dev/dev-euw1/cluster.yaml": (fleet / "clusters/dev/dev-use1/cluster.yaml")
        .read_text()
        .replace("dev-use1", "dev-euw1")
        .replace("us-east-1", "eu-west-1")
    }
    head = branch(fleet, "pr", files)
    report = build_report(fleet, "main", head, secret_key=KEY)
    added = {(c.target, c.kind, c.name) for c in report.changes if c.action == "added"}
    assert ("argocd/cluster-dev-euw1", "EKSCluster", "dev-euw1") in added
    assert ("applicationset/cluster-requests", "Application", "cluster-dev-euw1") in added


def test_remote_base_blocks_with_exit_1(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = "apps/podinfo/base/kustomization.yaml"
    text = (fleet / path).read_text() + "  - https://github.com/org/manifests//base?ref=v1\n"
    text = text.replace("resources:\n", "resources:\n  - https://github.com/org/manifests//base?ref=v1\n", 1)
    branch(fleet, "pr", {path: text})
    code, out, _ = run_cli(
        capsys, "check", "--repo", str(fleet), "--base", "main", "--head", "pr", "--format", "json"
    )
    assert code == 1
    data = json.loads(out)
    assert data["blocking"] is True
    remote = [f for f in data["findings"] if f["rule"] == "render.remote"]
    assert remote and remote[0]["path"] == path and remote[0]["severity"] == "error"
    assert remote[0]["hint"]


def test_usage_errors_exit_2(fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        capsys, "check", "--repo", str(fleet), "--base", "main", "--head", "no-such-branch"
    )
    assert code == 2 and "unknown revision" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "check", "--repo", str(empty), "--base", "a", "--head", "b")
    assert code == 2 and "not a git repository" in err
    code, _, err = run_cli(capsys, "render", "--repo", str(fleet), "--ref", "main", "--target", "nope")
    assert code == 2 and "unknown target" in err and "argocd/podinfo-dev-use1" in err


def test_config_comes_from_the_base_revision(fleet: Path) -> None:
    cfg = (
        (fleet / ".github/gitops-bot.yml")
        .read_text()
        .replace("  parallelism: 2\n", "  parallelism: 2\n  exclude_paths: [apps]\n")
    )
    path = "apps/podinfo/overlays/prod/kustomization.yaml"
    head = branch(
        fleet,
        "pr",
        {".github/gitops-bot.yml": cfg, path: (fleet / path).read_text().replace("value: 3", "value: 4")},
    )
    report = build_report(fleet, "main", head, secret_key=KEY)
    assert any(c.target == "argocd/podinfo-prod-use1" for c in report.changes)


def test_works_on_a_bare_repository(fleet: Path, tmp_path: Path) -> None:
    path = "apps/checkout/overlays/dev/kustomization.yaml"
    branch(fleet, "pr", {path: (fleet / path).read_text().replace("value: 1", "value: 2")})
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(fleet), str(bare)], check=True)
    result = build_check(bare, "main", "pr", secret_key=KEY)
    assert [c.target for c in result.report.changes] == ["argocd/checkout-dev-use1"]


def test_checkers_run_and_a_failing_checker_becomes_a_finding(fleet: Path) -> None:
    seen: list[CheckInput] = []

    def ok(data: CheckInput) -> list[Finding]:
        seen.append(data)
        return [Finding("demo.rule", Severity.WARNING, "x.yaml", 3, "a warning", "do this")]

    def broken(data: CheckInput) -> list[Finding]:
        raise RuntimeError("boom")

    path = "apps/podinfo/overlays/dev/kustomization.yaml"
    head = branch(fleet, "pr", {path: (fleet / path).read_text().replace("value: 1", "value: 2")})
    report = build_report(fleet, "main", head, checkers=[broken, ok], secret_key=KEY)
    assert [f.rule for f in report.findings] == ["internal", "demo.rule"] or {
        f.rule for f in report.findings
    } == {
        "internal",
        "demo.rule",
    }
    internal = next(f for f in report.findings if f.rule == "internal")
    assert "boom" in internal.message and internal.blocking
    (data,) = seen
    assert data.changed_paths == (path,) and data.head_sha == head
    assert {o.target for o in data.rendered_head} == {"argocd/podinfo-dev-use1"}
    assert data.config["render"]["parallelism"] == 2


def test_render_cli_yaml_and_json(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "render", "--repo", str(fleet), "--ref", "main", "--target", "argocd/checkout-prod-use1"
    )
    assert code == 0
    assert out.startswith(
        "# target: argocd/checkout-prod-use1  cluster: prod-use1  env: prod  (4 objects)\n---\n"
    )
    assert "name: checkout-config-" in out and "replicas: 3" in out
    code, out, _ = run_cli(capsys, "render", "--repo", str(fleet), "--ref", "main", "--format", "json")
    data = json.loads(out)
    by_name = {t["target"]: t for t in data}
    addons = by_name["flux/staging-euw1/flux-system/addons"]
    lbc = next(o for o in addons["objects"] if o["metadata"]["name"] == "aws-load-balancer-controller")
    assert (
        lbc["spec"]["values"]["clusterName"] == "staging-euw1"
        and lbc["spec"]["values"]["region"] == "eu-west-1"
    )
    assert len(data) >= 40


SECRET_VALUE = "s3cr3t-Pa55word-do-not-print"
NEW_SECRET_VALUE = "n3w-s3cr3t-also-hidden"


def _secret_repo(make_repo: MakeRepo, value: str) -> Path:
    kust = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [app.yaml]\n"
    return make_repo(
        {
            "clusters/dev/flux.yaml": (
                "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: app\n"
                "  namespace: flux-system\nspec:\n  path: ./app\n  postBuild:\n    substituteFrom:\n"
                "      - kind: Secret\n        name: vars\n"
            ),
            "clusters/dev/vars.yaml": (
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: vars\n  namespace: flux-system\n"
                f"data:\n  db_password: {base64.b64encode(value.encode()).decode()}\n"
            ),
            "app/kustomization.yaml": kust,
            "app/app.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  dsn: postgres://app:${db_password}@db/app\n"
                "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: direct\nstringData:\n"
                f"  password: {value}\n  user: app\n"
            ),
        }
    )


def test_secret_values_never_appear_in_any_output(
    make_repo: MakeRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = _secret_repo(make_repo, SECRET_VALUE)
    git(repo, "checkout", "-q", "-b", "pr")
    vars_text = (repo / "clusters/dev/vars.yaml").read_text()
    app_text = (repo / "app/app.yaml").read_text()
    commit(
        repo,
        {
            "clusters/dev/vars.yaml": vars_text.replace(
                base64.b64encode(SECRET_VALUE.encode()).decode(),
                base64.b64encode(NEW_SECRET_VALUE.encode()).decode(),
            ),
            "app/app.yaml": app_text.replace(SECRET_VALUE, NEW_SECRET_VALUE),
        },
    )
    git(repo, "checkout", "-q", "main")
    outputs = []
    for fmt in ("markdown", "json"):
        code, out, err = run_cli(
            capsys, "check", "--repo", str(repo), "--base", "main", "--head", "pr", "--format", fmt
        )
        assert code == 1  # the plaintext Secrets block (secrets.plaintext)
        outputs += [out, err]
    for ref in ("main", "pr"):
        for fmt in ("yaml", "json"):
            code, out, err = run_cli(capsys, "render", "--repo", str(repo), "--ref", ref, "--format", fmt)
            assert code == 0
            outputs += [out, err]
    result = build_check(repo, "main", "pr")
    outputs += result.comment_parts()
    from bot.domain.diff import diff_check_output

    outputs += list(diff_check_output(result.diff))
    outputs += [repr(o.obj) for o in result.diff.rendered_head]
    for text in outputs:
        for value in (SECRET_VALUE, NEW_SECRET_VALUE):
            assert value not in text
            assert base64.b64encode(value.encode()).decode() not in text
    data = json.loads(outputs[2])
    assert sorted((f["rule"], f["path"]) for f in data["findings"] if f["severity"] == "error") == [
        ("secrets.plaintext", "app/app.yaml"),
        ("secrets.plaintext", "clusters/dev/vars.yaml"),
    ]
    kinds = {(c["kind"], c["name"]): c for c in data["changes"]}
    assert "-  dsn: postgres://app:<secret hmac:" in kinds[("ConfigMap", "app")]["diff"]
    direct = kinds[("Secret", "direct")]["diff"]
    assert "-  password: <secret hmac:" in direct and "+  password: <secret hmac:" in direct
    assert "user:" not in direct.replace("   user:", "")  # unchanged key is context, not a change


def test_render_cache_reuses_identical_inputs(fleet: Path, tmp_path: Path) -> None:
    cache = RenderCache(tmp_path / "cache")
    first = compute_diff(fleet, fleet, {"version": 1}, changed_paths=None, cache=cache, secret_key=KEY)
    misses = cache.misses
    assert first.changes == [] and misses > 0
    second = compute_diff(
        fleet,
        fleet,
        {"version": 1},
        changed_paths=None,
        cache=RenderCache(tmp_path / "cache"),
        secret_key=KEY,
    )
    assert second.changes == [] and second.targets_rendered == first.targets_rendered
    assert cache.hits > 0  # the head side of the first run hit what the base side rendered


BROKEN_APPSET = (
    "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: broken\n  namespace: argocd\n"
    "spec:\n  generators:\n    - list: {elements: [{a: b}]}\n      clusters: {}\n"
    "  template:\n    metadata: {name: x}\n    spec: {}\n"
)


def test_a_problem_the_base_already_has_does_not_block_an_unrelated_pr(make_repo: MakeRepo) -> None:
    repo = make_repo(fleet=True)
    commit(repo, {"platform/argocd/broken.yaml": BROKEN_APPSET}, "broken on main")
    path = "apps/podinfo/overlays/dev/kustomization.yaml"
    head = branch(repo, "pr", {path: (repo / path).read_text().replace("value: 1", "value: 2")})
    report = build_report(repo, "main", head, secret_key=KEY)
    assert not report.blocking and [c.target for c in report.changes] == ["argocd/podinfo-dev-use1"]


def test_a_pr_that_breaks_an_applicationset_blocks(fleet: Path) -> None:
    head = branch(fleet, "pr", {"platform/argocd/broken.yaml": BROKEN_APPSET})
    report = build_report(fleet, "main", head, secret_key=KEY)
    (f,) = [f for f in report.findings if f.rule == "render.applicationset"]
    assert f.blocking and f.path == "platform/argocd/broken.yaml" and "exactly one generator" in f.message


def test_removing_a_cluster_request_shows_removed_objects(fleet: Path) -> None:
    head = branch(fleet, "pr", {"clusters/staging/staging-euw1/cluster.yaml": None})
    report = build_report(fleet, "main", head, secret_key=KEY)
    removed = {(c.target, c.kind, c.name) for c in report.changes if c.action == "removed"}
    assert ("argocd/cluster-staging-euw1", "EKSCluster", "staging-euw1") in removed
    assert ("applicationset/cluster-requests", "Application", "cluster-staging-euw1") in removed
    assert all(c.action == "removed" for c in report.changes)


def test_example_fleet_config_is_valid_and_every_target_renders_cleanly() -> None:
    from bot.domain.config import parse_config
    from bot.render_runtime.engine import render_tree
    from tests.render.conftest import FLEET

    config = parse_config((FLEET / ".github/gitops-bot.yml").read_text())
    rendered, findings = render_tree(FLEET, config, secret_key=KEY)
    assert [f for f in findings if f.severity is not Severity.NOTICE] == []
    by_kind: dict[str, int] = {}
    for target, objects in rendered:
        assert objects, f"{target.name} renders nothing"
        by_kind[target.kind] = by_kind.get(target.kind, 0) + 1
    assert by_kind == {
        "flux": 25,
        "argocd": 15,
        "objects": 2,
    }  # 6 clusters x 4 + platform; 10 apps + 5 requests
    kinds = {o["kind"] for _, objs in rendered for o in objs}
    assert {
        "HelmRelease",
        "HelmRepository",
        "ResourceGraphDefinition",
        "EKSCluster",
        "ExternalSecret",
    } <= kinds
    assert {"ConstraintTemplate", "K8sRequiredLabels", "K8sContainerLimits", "ApplicationSet"} <= kinds


APPSET_GIT_FILES = """apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: apps
  namespace: argocd
spec:
  generators:
    - git:
        repoURL: https://example.com/fleet.git
        revision: HEAD
        files:
          - path: "clusters/*/config.json"
  template:
    metadata:
      name: "app-{{name}}"
    spec:
      project: default
      source:
        repoURL: https://example.com/fleet.git
        path: "{{appPath}}"
      destination:
        server: https://kubernetes.default.svc
        namespace: default
"""


def _configmap(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"


def _kustomization(*resources: str) -> str:
    return "resources:\n" + "".join(f"  - {r}\n" for r in resources)


@pytest.mark.parametrize("through", ["generator", "symlink"])
def test_head_is_discovered_again_when_a_generator_or_a_link_reads_what_changed(
    tmp_path: Path, through: str
) -> None:
    """A change to a file no marker names (a generator's config.json, a link's target) still re-targets."""
    trees = {}
    for side, app in (("base", "one"), ("head", "two")):
        tree = tmp_path / side
        files = {"apps/one/cm.yaml": _configmap("one"), "apps/two/cm.yaml": _configmap("two")}
        if through == "generator":
            files["argocd/appset.yaml"] = APPSET_GIT_FILES
            files["clusters/c1/config.json"] = f'{{"name": "c1", "appPath": "apps/{app}"}}'
        else:  # roots/kustomization.yaml is a link to pick.txt, which picks the app: the other is a root
            files["apps/one/kustomization.yaml"] = _kustomization("cm.yaml")
            files["apps/two/kustomization.yaml"] = _kustomization("cm.yaml")
            files["roots/pick.txt"] = _kustomization(f"../apps/{app}")
        write_tree(tree, files)
        if through == "symlink":
            (tree / "roots/kustomization.yaml").symlink_to("pick.txt")
        trees[side] = tree
    changed = ["clusters/c1/config.json"] if through == "generator" else ["roots/pick.txt"]
    full = compute_diff(trees["base"], trees["head"], {"version": 1}, secret_key=KEY)
    config = {"version": 1}
    partial = compute_diff(trees["base"], trees["head"], config, changed_paths=changed, secret_key=KEY)
    # a plain root that only stopped (or started) being referenced, its files untouched, deploys
    # nothing new: with the changed paths known it is not shown as added or removed
    orphans = {"kustomize/apps/one", "kustomize/apps/two"} if through == "symlink" else set()
    assert {(s.target, s.state) for s in partial.statuses if s.target not in orphans} == {
        (s.target, s.state) for s in full.statuses if s.target not in orphans
    }
    assert partial.changes == [c for c in full.changes if c.target not in orphans]
    if through == "generator":
        names = {(c.kind, c.name, c.action) for c in partial.changes if c.target == "argocd/app-c1"}
        assert names == {("ConfigMap", "one", "removed"), ("ConfigMap", "two", "added")}
    else:
        states = {s.target: s.state for s in partial.statuses}
        assert states["kustomize/apps/one"] == "unchanged" and states["kustomize/apps/two"] == "unchanged"
        names = {(c.kind, c.name, c.action) for c in partial.changes if c.target == "kustomize/roots"}
        assert names == {("ConfigMap", "one", "removed"), ("ConfigMap", "two", "added")}
