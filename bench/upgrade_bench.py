"""Benchmark upgrade planning on a 500-cluster fleet: one cluster's plan, and the daily calendar scan.

The fleet is bench/render_fleet.py's (N clusters x M apps as Flux Kustomizations) plus, per
cluster, its cluster request (a Crossplane Cluster, NodeGroup and kube-proxy Addon) on one of
four Kubernetes versions, and the ``clusters:`` registry that names each cluster's folder.

1. ``gitops-bot upgrade plan --cluster X`` as a user runs it (a fresh process; it reads the
   revision, finds the cluster's request, renders the cluster's targets for removed APIs). On
   this fleet it takes the fast path (``load_cluster(fast=True)``: the other clusters' folders
   left out, after a text search shows nothing there bears on X; tests/upgrades/test_fast_paths.py
   shows it gives the full path's plan); about half its time is the 21 kustomize builds.
2. The daily scan: every cluster request of the revision read and parsed, then the clusters due
   for an upgrade (standard support ending within the lead time) chosen.

    python bench/upgrade_bench.py [--clusters 500] [--apps 20] [--rounds 3]

Aims (issue 17): under 2 s for the plan, under 5 s for the scan.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.render_fleet import ENVS, _git, cluster_dir, generate
from bot.domain.upgrades.plan import due_upgrades
from bot.domain.validate.eks import EksCatalog
from bot.git.mirror import materialise
from bot.upgrades.facts import fleet_facts, read_docs

VERSIONS = ("1.32", "1.33", "1.34", "1.35")
TODAY = date(2026, 12, 3)


def request(name: str, version: str) -> str:
    return f"""apiVersion: eks.aws.crossplane.io/v1beta1
kind: Cluster
metadata:
  name: {name}
spec:
  forProvider:
    region: eu-west-1
    version: "{version}"
    resourcesVpcConfig:
      subnetIds: [subnet-a, subnet-b, subnet-c]
---
apiVersion: eks.aws.crossplane.io/v1alpha1
kind: NodeGroup
metadata:
  name: {name}-workers
spec:
  forProvider:
    region: eu-west-1
    clusterName: {name}
    version: "{version}"
    instanceTypes: [m6i.large]
    scalingConfig: {{minSize: 1, maxSize: 10, desiredSize: 3}}
---
apiVersion: eks.aws.crossplane.io/v1alpha1
kind: Addon
metadata:
  name: {name}-kube-proxy
spec:
  forProvider:
    addonName: kube-proxy
    addonVersion: v{version}.0-eksbuild.1
    clusterName: {name}
"""


def build(repo: Path, clusters: int, apps: int) -> list[str]:
    generate(repo, clusters, apps)
    names, registry = [], ["version: 1", "clusters:"]
    for i in range(clusters):
        rel = cluster_dir(i)
        name = rel.rsplit("/", 1)[1]
        names.append(name)
        (repo / rel / "cluster.yaml").write_text(request(name, VERSIONS[i % len(VERSIONS)]))
        registry += [f"  - name: {name}", f"    env: {ENVS[i % len(ENVS)]}", f"    path: {rel}"]
    (repo / ".github").mkdir(exist_ok=True)
    (repo / ".github/gitops-bot.yml").write_text("\n".join(registry) + "\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "cluster requests")
    return names


def plan_once(repo: Path, cluster: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "upgrade",
            "plan",
            "--repo",
            str(repo),
            "--cluster",
            cluster,
            "--format",
            "json",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def scan_once(repo: Path) -> tuple[float, int, int]:
    start = time.perf_counter()
    with materialise(repo / ".git", "HEAD") as tree:
        fleet = fleet_facts(read_docs(tree, {"version": 1}), {"version": 1})
    due = due_upgrades(fleet.clusters.values(), EksCatalog.bundled(), TODAY, 90)
    return time.perf_counter() - start, len(fleet.clusters), len(due)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "fleet"
        t0 = time.perf_counter()
        names = build(repo, args.clusters, args.apps)
        took = time.perf_counter() - t0
        print(f"fleet: {args.clusters} clusters x {args.apps} apps, generated in {took:.1f} s")
        plans = [plan_once(repo, names[len(names) // 2]) for _ in range(args.rounds)]
        print(
            f"upgrade plan, one cluster (fresh process):  median {statistics.median(plans):.2f} s  "
            f"(min {min(plans):.2f}, max {max(plans):.2f}; aim < 2 s)"
        )
        scans = [scan_once(repo) for _ in range(args.rounds)]
        times = [s[0] for s in scans]
        print(
            f"daily scan, {scans[0][1]} clusters ({scans[0][2]} due): "
            f"median {statistics.median(times):.2f} s  "
            f"(min {min(times):.2f}, max {max(times):.2f}; aim < 5 s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
