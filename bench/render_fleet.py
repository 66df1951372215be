"""Benchmark ``gitops-bot check`` on a generated fleet against the naive way.

Generates a fleet of N clusters x M apps in a temporary git repository: M app bases under
``apps/app-XX/base`` and one kustomize overlay per cluster under ``clusters/<env>/<name>``
(all M apps, a cluster label, a per-cluster patch). Then times two pull requests:

(a) one cluster's overlay changes (a replica count);
(b) a base used by every cluster changes (an image tag in ``apps/app-00/base``);

each with ``build_check`` (what ``gitops-bot check`` runs, cold cache) and with the naive
way: render every root at base and at head with kustomize, one after another.

    python bench/render_fleet.py [--clusters 500] [--apps 20] [--naive-sample 0]

``--naive-sample K`` times K roots and extrapolates (the full naive run of 1,000 kustomize
builds takes minutes on a shared machine); 0 runs it in full.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.domain.render.kustomize import run_kustomize  # noqa: E402
from bot.git.mirror import materialise  # noqa: E402
from bot.report import build_check  # noqa: E402

ENVS = ("dev", "staging", "prod")
REGIONS = ("us-east-1", "eu-west-1")
GIT = ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", "-c", "commit.gpgsign=false"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def cluster_dir(i: int) -> str:
    env = ENVS[i % len(ENVS)]
    region = REGIONS[i % len(REGIONS)]
    return f"clusters/{env}/{env}-{region}-{i:03d}"


def generate(repo: Path, clusters: int, apps: int) -> None:
    """Write the fleet and commit it on ``main``."""
    for a in range(apps):
        base = repo / f"apps/app-{a:02d}/base"
        base.mkdir(parents=True)
        (base / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"namespace: app-{a:02d}\nlabels:\n  - pairs:\n      app.kubernetes.io/name: app-{a:02d}\n"
            "    includeSelectors: true\nresources:\n  - deployment.yaml\n  - service.yaml\n"
            f"configMapGenerator:\n  - name: app-{a:02d}-config\n    literals:\n      - LOG_LEVEL=info\n"
        )
        (base / "deployment.yaml").write_text(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{a:02d}\nspec:\n  replicas: 2\n"
            f"  template:\n    spec:\n      containers:\n        - name: app\n"
            f"          image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/app-{a:02d}:1.0.0\n"
            "          envFrom:\n            - configMapRef:\n"
            f"                name: app-{a:02d}-config\n"
            "          resources:\n            limits:\n              cpu: 500m\n              memory: 256Mi\n"
        )
        (base / "service.yaml").write_text(
            f"apiVersion: v1\nkind: Service\nmetadata:\n  name: app-{a:02d}\nspec:\n  ports:\n    - port: 80\n"
        )
    for i in range(clusters):
        d = repo / cluster_dir(i)
        d.mkdir(parents=True)
        resources = "".join(f"  - ../../../apps/app-{a:02d}/base\n" for a in range(apps))
        (d / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"labels:\n  - pairs:\n      cluster: {d.name}\nresources:\n{resources}"
            "patches:\n  - target:\n      kind: Deployment\n      name: app-00\n"
            "    patch: |-\n      - op: replace\n        path: /spec/replicas\n        value: 2\n"
        )
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "fleet")


def pr(repo: Path, name: str, path: str, old: str, new: str) -> str:
    _git(repo, "checkout", "-q", "-b", name, "main")
    f = repo / path
    f.write_text(f.read_text().replace(old, new, 1))
    _git(repo, "commit", "-q", "-am", name)
    _git(repo, "checkout", "-q", "main")
    return name


def naive(repo: Path, head: str, roots: list[str], sample: int) -> float:
    """Render every root at base and at head, one after another (extrapolated from ``sample``)."""
    chosen = roots if not sample else roots[:: max(1, len(roots) // sample)][:sample]
    git_dir = repo / ".git"
    start = time.perf_counter()
    with materialise(git_dir, "main") as base_dir, materialise(git_dir, head) as head_dir:
        for root in chosen:
            run_kustomize(base_dir, root)
            run_kustomize(head_dir, root)
    elapsed = time.perf_counter() - start
    return elapsed * len(roots) / len(chosen)


def timed_check(repo: Path, head: str) -> tuple[float, int, int]:
    start = time.perf_counter()
    result = build_check(repo, "main", head, checkers=[], secret_key=b"bench")
    return time.perf_counter() - start, result.diff.targets_rendered, len(result.report.changes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--naive-sample", type=int, default=0, help="time this many roots and extrapolate")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gitops-bot-bench-"))
    try:
        repo = tmp / "fleet"
        repo.mkdir()
        t0 = time.perf_counter()
        generate(repo, args.clusters, args.apps)
        print(f"fleet: {args.clusters} clusters x {args.apps} apps, generated in {time.perf_counter() - t0:.1f} s")
        roots = [cluster_dir(i) for i in range(args.clusters)]
        one = pr(repo, "pr-one-overlay", f"{roots[7]}/kustomization.yaml", "value: 2", "value: 3")
        base = pr(repo, "pr-shared-base", "apps/app-00/base/deployment.yaml", ":1.0.0", ":1.1.0")
        for label, head in (("(a) one cluster's overlay", one), ("(b) base used by every cluster", base)):
            fast, rendered, changes = timed_check(repo, head)
            slow = naive(repo, head, roots, args.naive_sample)
            how = f"extrapolated from {args.naive_sample} roots" if args.naive_sample else "measured"
            print(
                f"{label}: check {fast:.2f} s ({rendered} targets rendered, {changes} object changes); "
                f"naive {slow:.1f} s ({2 * len(roots)} kustomize builds, {how}); speed-up {slow / fast:.1f}x"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
