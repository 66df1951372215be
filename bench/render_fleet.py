"""Benchmark ``gitops-bot check`` on a generated fleet against the naive way.

Generates, in a temporary git repository, a fleet of N clusters x M apps shaped like a
Flux multi-cluster repository: M apps with a base and one overlay per environment under
``apps/app-XX``; per cluster, a ``cluster-info`` ConfigMap, one Flux Kustomization per app
(path: that app's overlay for the cluster's environment, ``postBuild.substituteFrom`` the
cluster's ``cluster-info``), and a cluster-specific overlay (quota and limits) with its own
Flux Kustomization. That is N x (M + 1) targets.

Two pull requests are timed:

(a) one cluster's overlay changes (its ResourceQuota);
(b) a base used by every cluster changes (the image tag in ``apps/app-00/base``);
(c) one cluster's Flux Kustomizations change (their ``interval``): a file discovery reads,
    so the head tree is discovered again and that cluster's 21 targets are rendered;

each with ``build_check`` (what ``gitops-bot check`` runs; cold cache, fresh process
state) and with the naive way: for every target, one kustomize build of its path at base
and one at head, one after another (what running ``flux build`` per cluster and app does).

    python bench/render_fleet.py [--clusters 500] [--apps 20] [--naive-sample 40]
    python bench/render_fleet.py --fleet helm [--clusters 500] [--releases 20] [--charts 10]
    python bench/render_fleet.py --components [--component-clusters 3,12]

``--components`` times the large-components case instead: a Flux fleet bootstrapped the
standard way (``clusters/<name>/flux-system`` with a ~400 KB ``gotk-components.yaml`` of CRDs
and controllers, a different Flux version per cluster, so no two copies are the same file),
and a one-line pull request in one cluster's folder, checked with every checker
(validation included) cold and warm, for 3 and 12 clusters; it prints the figures and the
12/3 ratio (the cost must not grow with the clusters whose files did not change).

The naive run is timed on ``--naive-sample`` targets and extrapolated to all of them
(all 2 x N x (M + 1) builds would take hours); ``--naive-sample 0`` runs it in full.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import render_fleet_helm

from bot.domain.validate.base import forget_parses
from bot.git.mirror import materialise
from bot.prchecks.build import build_check
from bot.render_runtime.engine import forget_memos
from bot.render_runtime.kustomize_runner import run_kustomize

ENVS = ("dev", "staging", "prod")
REGIONS = ("us-east-1", "eu-west-1")
GIT = ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", "-c", "commit.gpgsign=false"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def cluster_dir(i: int) -> str:
    env = ENVS[i % len(ENVS)]
    region = REGIONS[i % len(REGIONS)]
    return f"clusters/{env}/{env}-{region}-{i:03d}"


KUST = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
FLUX = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"


def generate(repo: Path, clusters: int, apps: int) -> list[tuple[str, str]]:
    """Write the fleet, commit it on ``main`` and return every target as (cluster dir, path)."""
    targets: list[tuple[str, str]] = []
    for a in range(apps):
        app = f"app-{a:02d}"
        base = repo / f"apps/{app}/base"
        base.mkdir(parents=True)
        (base / "kustomization.yaml").write_text(
            f"{KUST}namespace: {app}\nlabels:\n  - pairs:\n      app.kubernetes.io/name: {app}\n"
            "    includeSelectors: true\nresources:\n  - deployment.yaml\n  - service.yaml\n"
            f"configMapGenerator:\n  - name: {app}-config\n    literals:\n      - LOG_LEVEL=info\n"
        )
        (base / "deployment.yaml").write_text(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\nspec:\n  replicas: 2\n"
            "  template:\n    spec:\n      containers:\n        - name: app\n"
            f"          image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/{app}:1.0.0\n"
            "          env:\n            - name: CLUSTER\n              value: ${cluster_name}\n"
            "            - name: AWS_REGION\n              value: ${region}\n"
            f"          envFrom:\n            - configMapRef:\n                name: {app}-config\n"
            "          resources:\n            limits:\n"
            "              cpu: 500m\n              memory: 256Mi\n"
        )
        (base / "service.yaml").write_text(
            f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {app}\nspec:\n  ports:\n    - port: 80\n"
        )
        for n, env in enumerate(ENVS, 1):
            overlay = repo / f"apps/{app}/overlays/{env}"
            overlay.mkdir(parents=True)
            (overlay / "kustomization.yaml").write_text(
                f"{KUST}resources:\n  - ../../base\nlabels:\n  - pairs:\n      env: {env}\n"
                f"patches:\n  - target:\n      kind: Deployment\n    patch: |-\n"
                f"      - op: replace\n        path: /spec/replicas\n        value: {n}\n"
            )
    for i in range(clusters):
        rel = cluster_dir(i)
        d = repo / rel
        env, region = ENVS[i % len(ENVS)], REGIONS[i % len(REGIONS)]
        (d / "overlay").mkdir(parents=True)
        (d / "cluster-info.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cluster-info\n  namespace: flux-system\n"
            f"data:\n  cluster_name: {d.name}\n  env: {env}\n  region: {region}\n"
        )
        (d / "overlay/kustomization.yaml").write_text(f"{KUST}resources:\n  - quota.yaml\n")
        (d / "overlay/quota.yaml").write_text(
            f"apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: {d.name}-quota\n  namespace: default\n"
            'spec:\n  hard:\n    pods: "200"\n    requests.cpu: "64"\n'
        )
        docs = []
        for a in range(apps):
            path = f"apps/app-{a:02d}/overlays/{env}"
            targets.append((rel, path))
            docs.append(
                f"{FLUX}metadata:\n  name: app-{a:02d}\n  namespace: flux-system\nspec:\n  interval: 10m\n"
                f"  path: ./{path}\n  prune: true\n"
                "  sourceRef:\n    kind: GitRepository\n    name: flux-system\n"
                "  postBuild:\n    substituteFrom:\n      - kind: ConfigMap\n        name: cluster-info\n"
            )
        targets.append((rel, f"{rel}/overlay"))
        docs.append(
            f"{FLUX}metadata:\n  name: cluster-config\n  namespace: flux-system\nspec:\n  interval: 10m\n"
            f"  path: ./{rel}/overlay\n  prune: true\n"
            "  sourceRef:\n    kind: GitRepository\n    name: flux-system\n"
        )
        (d / "flux.yaml").write_text("---\n".join(docs))
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "fleet")
    return targets


def pr(repo: Path, name: str, path: str, old: str, new: str) -> str:
    _git(repo, "checkout", "-q", "-b", name, "main")
    f = repo / path
    f.write_text(f.read_text().replace(old, new, 1))
    _git(repo, "commit", "-q", "-am", name)
    _git(repo, "checkout", "-q", "main")
    return name


def naive(repo: Path, head: str, targets: list[tuple[str, str]], sample: int) -> float:
    """Build every target's path at base and at head, one after another (extrapolated from ``sample``)."""
    chosen = targets if not sample else targets[:: max(1, len(targets) // sample)][:sample]
    git_dir = repo / ".git"
    with materialise(git_dir, "main") as base_dir, materialise(git_dir, head) as head_dir:
        start = time.perf_counter()
        for _cluster, path in chosen:
            run_kustomize(base_dir, path)
            run_kustomize(head_dir, path)
        elapsed = time.perf_counter() - start
    return elapsed * len(targets) / len(chosen)


def timed_check(repo: Path, head: str) -> tuple[float, int, int]:
    start = time.perf_counter()
    result = build_check(repo, "main", head, checkers=[], secret_key=b"bench")
    return time.perf_counter() - start, result.diff.targets_rendered, len(result.report.changes)


def _crd(group: str, kind: str, fields: int) -> str:
    """A CRD shaped like Flux's (v1 and v1beta2 versions, long descriptions): about 20 KB for 24 fields."""
    plural = kind.lower() + "s"
    props = "".join(
        f"""                  field{f:02d}:
                    description: |-
                      Field{f:02d} of the {kind} specification. It controls how the controller
                      reconciles the object; see the {group} documentation for details.
                    properties:
                      name:
                        description: Name of the referent in the same namespace.
                        type: string
                      interval:
                        description: Interval at which to reconcile, for example 5m or 1h.
                        pattern: ^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$
                        type: string
                      items:
                        items:
                          properties:
                            key: {{type: string}}
                            value: {{type: string}}
                          type: object
                        type: array
                    type: object
"""
        for f in range(fields)
    ).replace("\n    ", "\n")[4:]
    versions = "".join(
        f"""  - name: {v}
    served: true
    storage: {str(v == "v1").lower()}
    schema:
      openAPIV3Schema:
        properties:
          apiVersion: {{type: string}}
          kind: {{type: string}}
          metadata: {{type: object}}
          spec:
            properties:
{props}              type: object
        type: object
"""
        for v in ("v1", "v1beta2")
    )
    return f"""---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
  labels:
    app.kubernetes.io/part-of: flux
spec:
  group: {group}
  names:
    kind: {kind}
    listKind: {kind}List
    plural: {plural}
    singular: {kind.lower()}
  scope: Namespaced
  versions:
{versions}"""


FLUX_KINDS = (
    ("source.toolkit.fluxcd.io", ("GitRepository", "HelmRepository", "HelmChart", "Bucket", "OCIRepository")),
    ("kustomize.toolkit.fluxcd.io", ("Kustomization",)),
    ("helm.toolkit.fluxcd.io", ("HelmRelease",)),
    ("notification.toolkit.fluxcd.io", ("Alert", "Provider", "Receiver")),
)


def components(version: str) -> str:
    """A ~400 KB ``gotk-components.yaml``: Flux's CRDs and controllers, stamped with ``version``."""
    out = [
        f"# Flux Version: {version}\n# Components: source-controller,kustomize-controller,helm-controller\n"
    ]
    out.append("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n")
    for group, kinds in FLUX_KINDS:
        out.extend(_crd(group, kind, 22) for kind in kinds)
    for ctrl in ("source", "kustomize", "helm", "notification"):
        out.append(
            f"---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {ctrl}-controller\n"
            f"  namespace: flux-system\n  labels:\n    app.kubernetes.io/version: {version}\nspec:\n"
            f"  replicas: 1\n  selector:\n    matchLabels:\n      app: {ctrl}-controller\n  template:\n"
            f"    metadata:\n      labels:\n        app: {ctrl}-controller\n    spec:\n      containers:\n"
            f"        - name: manager\n          image: ghcr.io/fluxcd/{ctrl}-controller:{version}\n"
        )
    return "".join(out)


def generate_components(repo: Path, clusters: int) -> list[str]:
    """Write a Flux fleet of ``clusters`` standard ``clusters/<name>`` folders; return the cluster names."""
    names = []
    for i in range(clusters):
        env = ENVS[i % len(ENVS)]
        name = f"{env}-{i:02d}"
        names.append(name)
        d = repo / "clusters" / name
        (d / "flux-system").mkdir(parents=True)
        (d / "flux-system/gotk-components.yaml").write_text(components(f"v2.{i % 7}.{i}"))
        (d / "flux-system/gotk-sync.yaml").write_text(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: flux-system\n"
            "  namespace: flux-system\nspec:\n  interval: 1m\n  ref:\n    branch: main\n"
            "  url: ssh://git@github.com/example/fleet\n---\n"
            f"{FLUX}metadata:\n  name: flux-system\n  namespace: flux-system\nspec:\n  interval: 10m\n"
            f"  path: ./clusters/{name}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n"
            "    name: flux-system\n"
        )
        (d / "flux-system/kustomization.yaml").write_text(
            f"{KUST}resources:\n  - gotk-components.yaml\n  - gotk-sync.yaml\n"
        )
        (d / "apps.yaml").write_text(
            f"{FLUX}metadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 10m\n"
            f"  path: ./apps/{env}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n"
            "    name: flux-system\n"
        )
        (d / "quota.yaml").write_text(
            "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: team-quota\n  namespace: default\n"
            'spec:\n  hard:\n    pods: "200"\n'
        )
    (repo / "apps/base").mkdir(parents=True)
    (repo / "apps/base/kustomization.yaml").write_text(f"{KUST}resources:\n  - deployment.yaml\n")
    (repo / "apps/base/deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\n  namespace: apps\nspec:\n"
        "  replicas: 1\n  template:\n    spec:\n      containers:\n        - name: podinfo\n"
        "          image: ghcr.io/stefanprodan/podinfo:6.5.0\n"
    )
    for env in ENVS:
        (repo / f"apps/{env}").mkdir(parents=True)
        (repo / f"apps/{env}/kustomization.yaml").write_text(f"{KUST}resources:\n  - ../base\n")
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "fleet")
    return names


def components_case(sizes: list[int]) -> None:
    """Time a one-line PR on fleets with large per-cluster flux-system components (all checkers)."""
    figures: dict[int, tuple[float, float]] = {}
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="gitops-bot-bench-"))
        try:
            repo = tmp / "fleet"
            repo.mkdir()
            names = generate_components(repo, n)
            size = (repo / "clusters" / names[0] / "flux-system/gotk-components.yaml").stat().st_size
            head = pr(repo, "pr-one-line", f"clusters/{names[1]}/quota.yaml", '"200"', '"250"')
            forget_memos()
            forget_parses()
            start = time.perf_counter()
            result = build_check(repo, "main", head, secret_key=b"bench")
            cold = time.perf_counter() - start
            start = time.perf_counter()
            build_check(repo, "main", head, secret_key=b"bench")
            warm = time.perf_counter() - start
            forget_memos()
            forget_parses()
            start = time.perf_counter()
            build_check(repo, "main", head, checkers=[], secret_key=b"bench")
            render_only = time.perf_counter() - start
            figures[n] = (cold, warm)
            clusters = sorted({c.cluster for c in result.report.changes})
            print(
                f"{n} clusters, gotk-components.yaml {size / 1024:.0f} KB each (all different): one-line PR "
                f"check {cold:.2f} s cold, {warm:.2f} s warm (rendering alone, cold: {render_only:.2f} s); "
                f"{result.diff.targets_rendered} targets rendered, "
                f"{len(result.report.changes)} object changes on {clusters}, "
                f"{sum(f.blocking for f in result.report.findings)} blocking findings"
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if len(sizes) >= 2:
        small, large = figures[sizes[0]], figures[sizes[-1]]
        print(
            f"ratio {sizes[-1]}/{sizes[0]} clusters: cold {large[0] / small[0]:.2f}x, "
            f"warm {large[1] / small[1]:.2f}x"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--naive-sample", type=int, default=40, help="time this many targets and extrapolate")
    parser.add_argument("--fleet", choices=("kustomize", "helm"), default="kustomize")
    parser.add_argument("--releases", type=int, default=20, help="helm fleet: HelmReleases per cluster")
    parser.add_argument("--charts", type=int, default=10, help="helm fleet: charts in the repository")
    parser.add_argument("--helm-naive-sample", type=int, default=2, help="helm fleet: clusters timed naively")
    parser.add_argument("--components", action="store_true", help="time the large-components case")
    parser.add_argument("--component-clusters", default="3,12", help="fleet sizes for --components")
    args = parser.parse_args()
    if args.components:
        print(f"load average before the runs: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        components_case([int(x) for x in args.component_clusters.split(",")])
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="gitops-bot-bench-"))
    if args.fleet == "helm":  # see bench/render_fleet_helm.py
        try:
            render_fleet_helm.run(tmp, args.clusters, args.releases, args.charts, args.helm_naive_sample)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return 0
    try:
        repo = tmp / "fleet"
        repo.mkdir()
        t0 = time.perf_counter()
        targets = generate(repo, args.clusters, args.apps)
        print(
            f"fleet: {args.clusters} clusters x {args.apps} apps = {len(targets)} targets, "
            f"generated in {time.perf_counter() - t0:.1f} s"
        )
        one = pr(repo, "pr-one-overlay", f"{cluster_dir(7)}/overlay/quota.yaml", '"200"', '"250"')
        base = pr(repo, "pr-shared-base", "apps/app-00/base/deployment.yaml", ":1.0.0", ":1.1.0")
        flux = pr(repo, "pr-flux", f"{cluster_dir(7)}/flux.yaml", "interval: 10m", "interval: 5m")
        print(f"load average before the runs: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        cases = (
            ("(a) one cluster's overlay", one),
            ("(b) base used by every cluster", base),
            ("(c) one cluster's Flux Kustomizations", flux),
        )
        for label, head in cases:
            forget_memos()  # parses, scalars, dumps: start as a fresh process would
            cold, rendered, changes = timed_check(repo, head)
            warm, _, _ = timed_check(repo, head)
            slow = naive(repo, head, targets, args.naive_sample)
            how = f"extrapolated from {args.naive_sample} targets" if args.naive_sample else "measured"
            distinct = len({path for _cluster, path in targets})
            per_root = slow * distinct / len(targets)
            print(
                f"{label}: check {cold:.2f} s cold, {warm:.2f} s in a warm process "
                f"({rendered} targets rendered, {changes} object changes); naive {slow:.0f} s "
                f"({2 * len(targets)} kustomize builds, {how}); speed-up {slow / cold:.0f}x cold, "
                f"{slow / warm:.0f}x warm"
            )
            print(
                f"    stricter naive, each distinct root once per revision ({2 * distinct} builds): "
                f"{per_root:.0f} s; speed-up {per_root / cold:.1f}x cold, {per_root / warm:.1f}x warm"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
