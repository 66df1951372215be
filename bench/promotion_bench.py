"""Benchmark: PR merged into env/dev -> promotion PR into env/staging opened, on the simulator.

Main mode (default): generates the 500-cluster x 20-app Flux fleet of ``bench/render_fleet.py``
plus a ``.github/gitops-bot.yml`` with environments dev -> staging -> prod, pushes it to the
GitHub simulator on ``main`` and the three environment branches, and starts the real bot
(``create_app``: webhook, durable store, in-process worker, git mirror, every handler) on a
local port, as :class:`bot.sim.demo.DemoWorld` does. Then, ``--runs`` times, a developer
pushes a one-cluster change (that cluster's ResourceQuota), opens a PR into ``env/dev``,
the bot's PR checks finish, and the PR is merged through the REST API. The time measured
runs from the merge call returning until the promotion PR into ``env/staging`` exists in
the simulator's state (polled every 10 ms). The bot receives no webhook before the first
merge, so the first promotion starts cold (no git mirror, no config, empty parse and
render caches) and is printed apart; then median, p90 and max of the others, and the REST
calls the bot made per promotion (from the simulator's request log), by route.

``--fake`` keeps the older, narrower mode: the promotion handler alone with real git and the
in-memory fake GitHub of the tests, on a flat fleet of ``clusters/<name>/`` folders.

    /work/venv/bin/python bench/promotion_bench.py [--clusters 500] [--apps 20] [--runs 9]
    /work/venv/bin/python bench/promotion_bench.py --fake [--clusters 500] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import render_fleet

from bot.git.files import GIT_ENV
from bot.service.context import HandlerContext
from bot.sim.demo import DemoWorld

REPO = "example-org/fleet"
ENV_BRANCHES = ("env/dev", "env/staging", "env/prod")

SIM_CONFIG = """\
version: 1
environments:
  - name: dev
    branch: env/dev
    auto_merge: true
    gates:
      health:
        contexts: [flux/kustomization]
      soak: 5s
  - name: staging
    branch: env/staging
    auto_merge: true
    gates:
      health:
        contexts: [flux/kustomization]
      soak: 5s
  - name: prod
    branch: env/prod
    auto_merge: false
promotion:
  strategy: cherry-pick
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


def _fleet_files(clusters: int, apps: int, root: Path) -> dict[str, str | None]:
    """Generate the render benchmark's fleet under ``root`` and return it as path -> text."""
    work = root / "fleet-src"
    work.mkdir()
    render_fleet.generate(work, clusters, apps)
    files: dict[str, str | None] = {
        str(p.relative_to(work)): p.read_text(encoding="utf-8")
        for p in sorted(work.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(work).parts
    }
    files[".github/gitops-bot.yml"] = SIM_CONFIG
    return files


def _rest(route: str) -> bool:
    """Whether a logged request is a REST call (not git over HTTP)."""
    return not route.endswith((".git/info/refs", "git-upload-pack", "git-receive-pack"))


def _promotion(world: DemoWorld, number: int) -> Any | None:
    prefix = f"Promote #{number} to staging"
    for p in world.sim.world.pulls.get(REPO, {}).values():
        if p.base_ref == "env/staging" and str(p.title).startswith(prefix):
            return p
    return None


async def sim_main(clusters: int, apps: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="gitops-bot-promo-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        files = _fleet_files(clusters, apps, root)
        print(
            f"fleet: {clusters} clusters x {apps} apps, {len(files)} files, generated in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        world_dir = root / "world"
        world_dir.mkdir()
        async with DemoWorld(world_dir, out=lambda _s: None, reconcile_interval=0) as world:
            d = world.driver
            for login in ("alice", "bob"):
                d.user(login, email=f"{login}@example.com")
            d.org("example-org", members=["alice", "bob"])
            d.repo(REPO, collaborators={"alice": "write", "bob": "maintain"})
            installation = d.install("example-org").id
            # the bot sees nothing before the first merge, so that one starts with no mirror
            world.sim.set_webhook_url(None)
            t0 = time.perf_counter()
            for branch in ("main", *ENV_BRANCHES):
                await d.push("bob", REPO, branch, dict(files), message="The fleet", base=None)
            await world.sim.wait_for_webhooks(timeout=600)
            print(
                f"pushed to the simulator on main and {', '.join(ENV_BRANCHES)} in "
                f"{time.perf_counter() - t0:.1f} s"
            )
            bot = {world.sim.bot_login, f"installation:{installation}"}
            times: list[float] = []
            calls: list[int] = []
            calls_total: list[int] = []
            routes: Counter[str] = Counter()
            routes_total: Counter[str] = Counter()
            for k in range(runs + 1):
                i = (7 + 37 * k) % clusters
                path = f"{render_fleet.cluster_dir(i)}/overlay/quota.yaml"
                text = str(files[path]).replace('pods: "200"', f'pods: "{201 + k}"')
                branch = f"bench/quota-{k}"
                title = f"Raise the pod quota of cluster {i:03d}"
                await d.push("alice", REPO, branch, {path: text}, base="env/dev", message=title)
                number = await d.open_pr("alice", REPO, branch, base="env/dev", title=title)
                if k == 0:
                    world.sim.set_webhook_url(world.bot_url)
                await world.settle(timeout=300)  # the PR checks are done: only the merge is timed
                mark = world.sim.requests.mark()
                await d.api("bob", "PUT", f"/repos/{REPO}/pulls/{number}/merge", {"merge_method": "merge"})
                start = time.perf_counter()
                while _promotion(world, number) is None:
                    if time.perf_counter() - start > 300:
                        raise SystemExit(f"no promotion PR for #{number} after 300 s")
                    await asyncio.sleep(0.01)
                elapsed = time.perf_counter() - start
                upto = [e for e in world.sim.requests.since(mark) if e.actor in bot and _rest(e.route)]
                await world.settle(timeout=300)
                after = [e for e in world.sim.requests.since(mark) if e.actor in bot and _rest(e.route)]
                label = "cold" if k == 0 else f"run {k}"
                print(
                    f"  {label:>6}: #{number} -> promotion PR in {elapsed * 1000:.0f} ms "
                    f"({len(upto)} bot REST calls until then, {len(after)} for the whole merge)"
                )
                if k == 0:
                    cold = elapsed
                    continue
                times.append(elapsed)
                calls.append(len(upto))
                calls_total.append(len(after))
                routes.update(f"{e.method} {e.route}" for e in upto)
                routes_total.update(f"{e.method} {e.route}" for e in after)
        print(
            f"merge -> promotion PR opened (simulator, real bot, {clusters}-cluster fleet), "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs:"
        )
        print(f"  first (cold) {cold * 1000:.0f} ms")
        print(
            f"  {runs} warm runs: median {statistics.median(times) * 1000:.0f} ms  "
            f"p90 {_percentile(times, 0.9) * 1000:.0f} ms  max {max(times) * 1000:.0f} ms"
        )
        print(
            f"  bot REST calls per promotion: {statistics.mean(calls):.1f} until the PR exists, "
            f"{statistics.mean(calls_total):.1f} for everything the merge triggers"
        )
        print("  per promotion, until the PR exists:")
        for route, n in routes.most_common():
            print(f"    {n / runs:5.1f}  {route}")
        print("  per promotion, everything the merge triggers (PR checks, gates, labels, comments):")
        for route, n in routes_total.most_common():
            print(f"    {n / runs:5.1f}  {route}")


FAKE_CONFIG = """\
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


def build_fleet(root: Path, clusters: int) -> Any:
    """A fleet repo: config on main, ``clusters/<name>/`` x N on env/dev, env/staging, env/prod."""
    from tests.support.gitrepo import GitRepo

    work = root / "work"

    def run(*a: str) -> None:
        subprocess.run(["git", "-C", str(work), *a], check=True, env=GIT_ENV, capture_output=True)

    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True, env=GIT_ENV)
    ident = ["-c", "user.name=Fleet", "-c", "user.email=fleet@example.com"]
    (work / ".github").mkdir()
    (work / ".github" / "gitops-bot.yml").write_text(FAKE_CONFIG)
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
    return GitRepo(remote, bare=True)  # git init on an existing repository only re-initialises it


async def fake_main(clusters: int, runs: int) -> None:
    """The promotion handler alone: real git, the fake GitHub of the tests."""
    from handlers import promotion
    from tests.support.github import FakeGitHub, make_event
    from tests.support.repos import FakeRepoAccess
    from tests.support.store import StateStore

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        repo = build_fleet(root, clusters)
        print(f"fleet: {clusters} clusters generated in {time.perf_counter() - t0:.2f}s")
        gh = FakeGitHub(repo=repo)
        access = FakeRepoAccess(remote=repo.path, mirror=root / "mirror.git")
        await access.git_dir("org/fleet")  # the service keeps a warm mirror
        times = []
        store = StateStore()  # the bot's records of its promotions, as the service's store keeps them
        for i in range(runs):
            name = f"team-{i % clusters:03d}"
            branch = f"feature/resize-{i}"
            repo.git("update-ref", f"refs/heads/{branch}", repo.sha("refs/heads/env/dev"))
            text = CLUSTER.format(name=name, region="eu-west-1", i=i).replace('"1.31"', '"1.32"')
            repo.commit_on(branch, {f"clusters/{name}/cluster.yaml": text}, f"Upgrade {name} to 1.32")
            pr = gh.open_pr(branch, "env/dev", f"Upgrade {name} to 1.32")
            gh.merge_pr(pr["number"])
            ctx = HandlerContext(repos=access, store=store)  # one context per delivery, as the worker does
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
    parser.add_argument("--apps", type=int, default=20, help="apps per cluster (simulator mode)")
    parser.add_argument("--runs", type=int, default=9, help="timed merges after the first (cold) one")
    parser.add_argument("--fake", action="store_true", help="the handler alone with the fake GitHub")
    args = parser.parse_args()
    if args.fake:
        asyncio.run(fake_main(args.clusters, args.runs))
    else:
        asyncio.run(sim_main(args.clusters, args.apps, args.runs))
