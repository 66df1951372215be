"""Benchmark: PR merged into dev -> promotion PR to staging opened, on a generated 500-cluster fleet.

Runs the real promotion handler (``handlers.promotion.router``) with real git (a bare
"remote" and a mirror, as the service has) against the in-memory fake GitHub of the tests.
Prints the median and p95 of the time from dispatching ``pull_request closed`` to the
promotion PR being opened with its check run. The lead re-measures this on the simulator.

    /work/venv/bin/python bench/promotion_bench.py [--clusters 500] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.context import HandlerContext
from bot.git.files import GIT_ENV
from handlers import promotion
from tests.fakes import make_event
from tests.promotion.fakegh import FakeGitHub, FakeRepoAccess
from tests.promotion.gitrepo import BareRepo

CONFIG = """\
version: 1
environments:
  - {name: dev, branch: env/dev, auto_merge: true, gates: {health: {contexts: [flux/dev]}, soak: 30m}}
  - {name: staging, branch: env/staging, auto_merge: true, gates: {health: {contexts: [flux/staging]}}}
  - {name: prod, branch: env/prod, gates: {approvals: [prod-owners]}}
"""

CLUSTER = """\
apiVersion: eks.services.k8s.aws/v1alpha1
kind: Cluster
metadata:
  name: {name}
  namespace: clusters
spec:
  name: {name}
  version: "1.31"
  region: {region}
  resourcesVPCConfig:
    subnetIDs: [subnet-{i:04d}a, subnet-{i:04d}b]
"""


def build_fleet(root: Path, clusters: int) -> BareRepo:
    """A fleet repo: config on main, ``clusters/<name>/`` x N on env/dev, env/staging, env/prod."""
    work = root / "work"

    def run(*a: str) -> None:
        subprocess.run(["git", "-C", str(work), *a], check=True, env=GIT_ENV, capture_output=True)

    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True, env=GIT_ENV)
    ident = ["-c", "user.name=Fleet", "-c", "user.email=fleet@example.com"]
    (work / ".github").mkdir()
    (work / ".github" / "gitops-bot.yml").write_text(CONFIG)
    regions = ["eu-west-1", "us-east-1", "ap-southeast-2", "eu-central-1"]
    for i in range(clusters):
        d = work / "clusters" / f"team-{i:03d}"
        d.mkdir(parents=True)
        (d / "cluster.yaml").write_text(CLUSTER.format(name=f"team-{i:03d}", region=regions[i % 4], i=i))
        (d / "kustomization.yaml").write_text("resources: [cluster.yaml]\n")
    run("add", "-A")
    run(*ident, "commit", "-q", "-m", "fleet")
    for b in ("env/dev", "env/staging", "env/prod"):
        run("branch", b)
    remote = root / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True, env=GIT_ENV)
    repo = BareRepo.__new__(BareRepo)
    repo.path = remote
    repo._clock = 1_700_000_000
    return repo


async def main(clusters: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        repo = build_fleet(root, clusters)
        print(f"fleet: {clusters} clusters generated in {time.perf_counter() - t0:.2f}s")
        gh = FakeGitHub(repo=repo)
        access = FakeRepoAccess(remote=repo.path, mirror=root / "mirror.git")
        await access.git_dir("org/fleet")  # the service keeps a warm mirror
        times = []
        for i in range(runs):
            name = f"team-{i % clusters:03d}"
            branch = f"feature/resize-{i}"
            repo.git("update-ref", f"refs/heads/{branch}", repo.sha("refs/heads/env/dev"))
            text = CLUSTER.format(name=name, region="eu-west-1", i=i).replace('"1.31"', '"1.32"')
            repo.commit(branch, {f"clusters/{name}/cluster.yaml": text}, f"Upgrade {name} to 1.32")
            pr = gh.open_pr(branch, "env/dev", f"Upgrade {name} to 1.32")
            gh.merge_pr(pr["number"])
            ctx = HandlerContext(repos=access)  # one context per delivery, as the worker does
            event = make_event(
                "pull_request",
                {"action": "closed", "pull_request": pr, "repository": {"full_name": "org/fleet"}},
            )
            start = time.perf_counter()
            await promotion.router.dispatch(event, gh, ctx)
            times.append(time.perf_counter() - start)
            opened = [
                p
                for p in gh.pulls.values()
                if p["title"] == f"Promote #{pr['number']} to staging: {pr['title']}"
            ]
            assert len(opened) == 1, "the promotion PR was not opened"
        times.sort()
        p95 = times[max(0, round(0.95 * len(times)) - 1)]
        print(f"merge -> promotion PR opened (fake GitHub, real git), {runs} runs:")
        print(
            f"  median {statistics.median(times) * 1000:.0f} ms  p95 {p95 * 1000:.0f} ms"
            f"  max {times[-1] * 1000:.0f} ms"
        )
        print(f"  GitHub calls per promotion: {len(gh.calls) / runs:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(main(args.clusters, args.runs))
