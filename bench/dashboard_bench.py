"""Benchmark the fleet dashboard on a generated fleet of N clusters x M apps.

The fleet is the one of ``bench/render_fleet.py`` (Flux Kustomizations per cluster and app,
overlays per environment, a cluster overlay), plus a Crossplane EKS ``Cluster`` request per
cluster (region and version), the example fleet's Gatekeeper policies, and a configuration
whose environments are ``env/dev``, ``env/staging`` and ``env/prod``. Printed:

- the full computation: every environment branch collected (discovery, every target rendered,
  Gatekeeper per cluster) and the fleet built, with a cold render cache;
- the incremental update after a push to ``env/prod`` of one cluster's overlay, of a shared
  base every prod cluster deploys, and of a policy constraint: what the ``fleet`` handler does
  (the branch collected again from the last collection's memo: only the clusters whose inputs
  changed, every cluster re-evaluated after a policy change) plus building the fleet and its JSON;
- the page's size (and the JSON's);
- the time to a rendered table in Chromium (Debian's ``chromium``; skipped when missing).

    python bench/dashboard_bench.py [--clusters 500] [--apps 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # render_fleet imports its sibling modules

from bench.render_fleet import ENVS, REGIONS, _git, cluster_dir, generate
from bot.domain.fleet import FleetFacts, build_fleet
from bot.domain.validate.eks import EksCatalog
from bot.fleet.collect import collect_branch
from bot.fleet.page import render_page
from bot.render_runtime.cache import RenderCache

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ("1.33", "1.34", "1.35")
CONFIG = """version: 1
environments:
  - {name: dev, branch: env/dev}
  - {name: staging, branch: env/staging}
  - {name: prod, branch: env/prod}
policy:
  enabled: true
  paths: [policies/templates, policies/constraints]
"""


def add_requests_and_policy(repo: Path, clusters: int) -> None:
    for i in range(clusters):
        d = repo / cluster_dir(i)
        env, region = ENVS[i % len(ENVS)], REGIONS[i % len(REGIONS)]
        (d / "cluster.yaml").write_text(
            "apiVersion: eks.aws.crossplane.io/v1beta1\nkind: Cluster\n"
            f"metadata:\n  name: {d.name}\n  labels:\n    environment: {env}\n"
            f'spec:\n  forProvider:\n    region: {region}\n    version: "{VERSIONS[i % len(VERSIONS)]}"\n'
        )
    (repo / ".github").mkdir(exist_ok=True)
    (repo / ".github/gitops-bot.yml").write_text(CONFIG)
    shutil.copytree(ROOT / "examples/fleet/common/policies", repo / "policies")


POLICY_FILE = "policies/constraints/containers-must-have-limits.yaml"


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def collect_all(repo: Path, cache: RenderCache, key: bytes) -> FleetFacts:
    facts = FleetFacts()
    git_dir = repo / ".git"
    for env in ENVS:
        clusters, env_facts = collect_branch(
            git_dir, "bench/fleet", f"env/{env}", secret_key=key, cache=cache
        )
        facts.clusters.extend(clusters)
        facts.envs.append(env_facts)
    return facts


async def time_to_table(page: Path, rows: int) -> float | None:
    chromium = shutil.which("chromium")
    if chromium is None:
        return None
    from playwright.async_api import async_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=args)
        tab = await browser.new_page(viewport={"width": 1400, "height": 900})
        start = time.perf_counter()
        await tab.goto(page.as_uri())
        await tab.wait_for_function(f"document.querySelectorAll('#rows tr').length === {rows}")
        elapsed = time.perf_counter() - start
        await browser.close()
        return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--apps", type=int, default=20)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    try:
        repo = tmp / "fleet"
        t = time.perf_counter()
        generate(repo, args.clusters, args.apps)
        add_requests_and_policy(repo, args.clusters)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "cluster requests and policy")
        for env in ENVS:
            _git(repo, "branch", f"env/{env}")
        targets = args.clusters * (args.apps + 1)
        print(f"fleet: {args.clusters} clusters x {args.apps} apps ({targets} targets), "
              f"generated in {time.perf_counter() - t:.1f} s")  # fmt: skip

        key = os.urandom(32)
        cache = RenderCache(max_entries=args.clusters * (args.apps + 1) * 2)
        t = time.perf_counter()
        facts = collect_all(repo, cache, key)
        fleet = build_fleet(facts, EksCatalog.bundled(), date.today())
        full = time.perf_counter() - t
        shown, action = len(fleet["clusters"]), fleet["counts"]["needs_action"]
        print(
            f"full computation (cold cache, 3 branches): {full:.1f} s; {shown} clusters, "
            f"{action} need action (load {_load()})"
        )

        # pushes to env/prod, each followed by what the handler does: the branch collected
        # (incremental: only the clusters whose inputs changed), the fleet built, its JSON
        prod = next(i for i in range(args.clusters) if ENVS[i % len(ENVS)] == "prod")
        pushes = [
            (
                "one cluster's overlay",
                cluster_dir(prod) + "/overlay/quota.yaml",
                'pods: "200"',
                'pods: "300"',
            ),
            ("a shared base (every prod cluster)", "apps/app-00/base/service.yaml", "port: 80", "port: 8080"),
            ("a policy constraint (every cluster)", POLICY_FILE, "spec:", "spec:  # reviewed"),
        ]
        for label, rel, old, new in pushes:
            _git(repo, "checkout", "-q", "env/prod")
            path = repo / rel
            path.write_text(path.read_text().replace(old, new, 1))
            _git(repo, "commit", "-q", "-am", label)
            _git(repo, "checkout", "-q", "main")
            t = time.perf_counter()
            clusters, env_facts = collect_branch(
                repo / ".git", "bench/fleet", "env/prod", secret_key=key, cache=cache
            )
            facts.clusters = [c for c in facts.clusters if c.branch != "env/prod"] + clusters
            facts.envs = [e for e in facts.envs if e.branch != "env/prod"] + [env_facts]
            fleet = build_fleet(facts, EksCatalog.bundled(), date.today())
            body = json.dumps(fleet, sort_keys=True, separators=(",", ":")).encode()
            incremental = time.perf_counter() - t
            print(f"incremental update after a push of {label} to env/prod: {incremental:.2f} s")
        print(f"(render cache {cache.hits} hits, {cache.misses} misses in all; load {_load()})")

        page = render_page(fleet, live_url="/fleet.json")
        out = tmp / "fleet.html"
        out.write_text(page)
        print(f"page: {len(page.encode()) / 1024:.0f} KiB ({len(body) / 1024:.0f} KiB of it is the JSON)")
        seconds = asyncio.run(time_to_table(out, len(fleet["clusters"])))
        if seconds is None:
            print("time to a rendered table in Chromium: skipped (chromium not installed)")
        else:
            print(f"time to a rendered table of {len(fleet['clusters'])} rows in Chromium: {seconds:.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
