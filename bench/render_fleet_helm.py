"""The Helm fleet of ``bench/render_fleet.py --fleet helm``: HelmReleases over charts of the repository.

N clusters x M HelmReleases over K charts kept in the repository (``charts/chart-XX``, each shaped
like tests/fixtures/helm/charts/web: helpers, range, include, required, tpl, lookup, a vendored
subchart), in the shape of fluxcd/flux2-kustomize-helm-example: per environment, ``apps/<env>``
holds an ``env-values`` ConfigMap and M HelmReleases (chart ``./charts/chart-XX`` of the
``flux-system`` GitRepository, ``valuesFrom`` that ConfigMap, ``values`` with ``${cluster_name}``,
``${region}``, ``${replicas}``); per cluster, a ``cluster-info`` ConfigMap and one Flux
Kustomization ``apps`` (path ``./apps/<env>``, ``substituteFrom`` cluster-info). N targets,
N x M chart renders.

Two pull requests, each checked cold (fresh process state: nothing parsed, no render memo, Helm
workers already started) and warm (the same check again, as the long-running bot sees it):

(h1) one chart's values change (``charts/chart-03/values.yaml``): every cluster's ``apps``
     target renders again at base and head (3 kustomize builds per revision, shared through the
     raw cache); the releases of the other charts render once (base and head share them);
(h2) one cluster's variables change (``replicas`` in its cluster-info): that cluster's 20
     releases render again.

The naive way renders every target at base and at head, one after another: kustomize on the
cluster's folder, then, for every HelmRelease, ``helm template`` with the same engine in a fresh
sandboxed process (as a CI job calling a helm binary per release does), timed on a sample of
clusters and extrapolated.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from bot.domain.render.flux import substitute_text
from bot.git.mirror import materialise
from bot.prchecks.build import build_check
from bot.render_runtime.engine import forget_memos
from bot.render_runtime.helm_runner import HelmRunner
from bot.render_runtime.kustomize_runner import run_kustomize

ROOT = Path(__file__).resolve().parent.parent
WEB_CHART = ROOT / "tests" / "fixtures" / "helm" / "charts" / "web"
ENVS = ("dev", "staging", "prod")
REGIONS = ("us-east-1", "eu-west-1")
GIT = ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", "-c", "commit.gpgsign=false"]


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True, text=True)
    return proc.stdout.strip()


def cluster_dir(i: int) -> str:
    env = ENVS[i % len(ENVS)]
    return f"clusters/{env}/{env}-{i:03d}"


def generate(repo: Path, clusters: int, releases: int, charts: int) -> None:
    """Write the Helm fleet and commit it on ``main``."""
    for c in range(charts):
        dest = repo / f"charts/chart-{c:02d}"
        shutil.copytree(WEB_CHART, dest)
        chart_yaml = dest / "Chart.yaml"
        chart_yaml.write_text(chart_yaml.read_text().replace("name: web", f"name: chart-{c:02d}"))
        for tpl in (dest / "templates").iterdir():
            tpl.write_text(tpl.read_text().replace('"web.', f'"chart-{c:02d}.'))
    for env in ENVS:
        folder = repo / f"apps/{env}"
        folder.mkdir(parents=True)
        (folder / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: apps\n"
            "resources: [values.yaml, releases.yaml]\n"
        )
        (folder / "values.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: env-values}\ndata:\n  values.yaml: |\n"
            f"    database: {{host: db.{env}.internal}}\n    env: {{ENV: {env}}}\n"
        )
        docs = []
        for r in range(releases):
            docs.append(
                "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\n"
                f"metadata: {{name: app-{r:02d}}}\nspec:\n  interval: 10m\n  chart:\n    spec:\n"
                f"      chart: ./charts/chart-{r % charts:02d}\n"
                "      sourceRef: {kind: GitRepository, name: flux-system, namespace: flux-system}\n"
                "  valuesFrom:\n    - {kind: ConfigMap, name: env-values}\n"
                f"  values:\n    replicaCount: ${{replicas}}\n    image: {{tag: 1.{r}.0}}\n"
                '    podAnnotations: {cluster: "${cluster_name}", region: "${region}"}\n'
            )
        (folder / "releases.yaml").write_text("---\n".join(docs))
    for i in range(clusters):
        d = repo / cluster_dir(i)
        d.mkdir(parents=True)
        env = ENVS[i % len(ENVS)]
        (d / "cluster-info.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cluster-info, namespace: flux-system}\n"
            f'data: {{cluster_name: {d.name}, region: {REGIONS[i % 2]}, replicas: "{1 + i % 3}"}}\n'
        )
        (d / "flux.yaml").write_text(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
            "metadata: {name: apps, namespace: flux-system}\n"
            f"spec:\n  interval: 10m\n  path: ./apps/{env}\n  prune: true\n"
            "  sourceRef: {kind: GitRepository, name: flux-system}\n"
            "  postBuild:\n    substituteFrom: [{kind: ConfigMap, name: cluster-info}]\n"
        )
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "helm fleet")


def _pr(repo: Path, name: str, path: str, old: str, new: str) -> str:
    _git(repo, "checkout", "-q", "-b", name, "main")
    f = repo / path
    f.write_text(f.read_text().replace(old, new, 1))
    _git(repo, "commit", "-q", "-am", name)
    _git(repo, "checkout", "-q", "main")
    return name


def naive(repo: Path, head: str, clusters: int, sample: int) -> float:
    """Per cluster: kustomize its path, substitute its variables, then ``helm template`` per release
    in a fresh sandboxed process (as a CI job calling a helm binary per release does); base and head."""
    chosen = list(range(0, clusters, max(1, clusters // sample)))[:sample]
    git_dir = repo / ".git"
    with materialise(git_dir, "main") as base_dir, materialise(git_dir, head) as head_dir:
        start = time.perf_counter()
        for tree in (base_dir, head_dir):
            for i in chosen:
                info = yaml.safe_load((tree / cluster_dir(i) / "cluster-info.yaml").read_text())["data"]
                text = substitute_text(run_kustomize(tree, f"apps/{ENVS[i % len(ENVS)]}"), info)
                objects = list(yaml.safe_load_all(text))
                config_map = next(o for o in objects if o["kind"] == "ConfigMap")
                values = yaml.safe_load(config_map["data"]["values.yaml"])
                for hr in (o for o in objects if o["kind"] == "HelmRelease"):
                    runner = HelmRunner(workers=1)  # a fresh process per release, like `helm template`
                    try:
                        runner.render(
                            tree / hr["spec"]["chart"]["spec"]["chart"],
                            key="naive",
                            values={**values, **hr["spec"]["values"]},
                            name=hr["metadata"]["name"],
                            namespace="apps",
                            crds=True,
                        )
                    finally:
                        runner.close()
        elapsed = time.perf_counter() - start
    return elapsed * clusters / len(chosen)


def peak_mb() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest finished child (MiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def run(tmp: Path, clusters: int, releases: int, charts: int, sample: int) -> None:
    repo = tmp / "helm-fleet"
    repo.mkdir()
    t0 = time.perf_counter()
    generate(repo, clusters, releases, charts)
    print(
        f"helm fleet: {clusters} clusters x {releases} HelmReleases over {charts} charts = "
        f"{clusters} targets, {clusters * releases} releases, generated in {time.perf_counter() - t0:.1f} s"
    )
    chart_values = "charts/chart-03/values.yaml"
    values = _pr(repo, "pr-chart-values", chart_values, "pullPolicy: IfNotPresent", "pullPolicy: Always")
    one = _pr(repo, "pr-one-cluster", f"{cluster_dir(7)}/cluster-info.yaml", 'replicas: "2"', 'replicas: "5"')
    build_check(repo, "main", one, checkers=[], secret_key=b"bench")  # start the Helm workers
    for label, head in (("(h1) one chart's values", values), ("(h2) one cluster's variables", one)):
        forget_memos()
        start = time.perf_counter()
        result = build_check(repo, "main", head, checkers=[], secret_key=b"bench")
        cold = time.perf_counter() - start
        start = time.perf_counter()
        build_check(repo, "main", head, checkers=[], secret_key=b"bench")
        warm = time.perf_counter() - start
        slow = naive(repo, head, clusters, sample)
        own, child = peak_mb()
        print(
            f"{label}: check {cold:.2f} s cold, {warm:.2f} s warm ({result.diff.targets_rendered} targets "
            f"rendered, {len(result.report.changes)} object changes, {len(result.report.findings)} findings);"
            " "
            f"naive {slow:.0f} s (extrapolated from {sample} clusters); speed-up {slow / cold:.0f}x cold, "
            f"{slow / warm:.0f}x warm; peak RSS bot {own:.0f} MiB, largest child {child:.0f} MiB"
        )
