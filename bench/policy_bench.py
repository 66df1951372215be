"""Benchmarks: Gatekeeper on 1,000 objects x 50 constraints, and validation on a 500-cluster fleet.

Run from the project root: ``/work/venv/bin/python bench/policy_bench.py``. Prints figures;
asserts nothing about time (the machine is shared). Uses the bundled gatekeeper-library
fixtures for templates, and generates everything else in a temporary directory.
"""

from __future__ import annotations

import copy
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.domain.model import CheckInput  # noqa: E402
from bot.domain.policy import evaluate, load_policy, matches  # noqa: E402
from bot.domain.policy.gatekeeper import default_workers  # noqa: E402
from bot.domain.validate import validate  # noqa: E402
from bot.domain.yamlio import load_yaml_text  # noqa: E402

LIBRARY = ROOT / "tests" / "fixtures" / "gatekeeper-library" / "general"


def _objects(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """Return ``n`` rendered-looking objects: Pods, Deployments, Services, Ingresses, Namespaces."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        ns = f"team-{i % 20}"
        image = rng.choice(
            ["nginx:1.27", "openpolicyagent/opa:0.9.2", "registry.example.com/app@sha256:" + "a" * 64]
        )
        container = {
            "name": "app",
            "image": image,
            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
            "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
        }
        kind = ("Pod", "Pod", "Deployment", "Service", "Ingress", "Pod", "Namespace", "Pod")[i % 8]
        meta = {"name": f"obj-{i}", "namespace": ns, "labels": {"owner": "a.agilebank.demo", "app": f"a{i}"}}
        if kind == "Pod":
            out.append(
                {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": [container]}}
            )
        elif kind == "Deployment":
            out.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": meta,
                    "spec": {
                        "replicas": rng.randint(1, 60),
                        "template": {"spec": {"containers": [container]}},
                    },
                }
            )
        elif kind == "Service":
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": meta,
                    "spec": {"type": rng.choice(["ClusterIP", "NodePort"]), "ports": [{"port": 80}]},
                }
            )
        elif kind == "Ingress":
            out.append(
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "Ingress",
                    "metadata": meta,
                    "spec": {"rules": [{"host": f"h{i % 50}.example.com"}]},
                }
            )
        else:
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": f"ns-{i}", "labels": meta["labels"]},
                }
            )
    return out


def _policy_tree(tmp: Path, constraints: int) -> Path:
    """Write the library templates and ``constraints`` constraints (sample constraints, renamed) under tmp."""
    root = tmp / "policy-repo"
    samples: list[dict[str, Any]] = []
    for folder in sorted(LIBRARY.iterdir()):
        dest = root / "policies" / folder.name
        dest.mkdir(parents=True)
        shutil.copy(folder / "template.yaml", dest / "template.yaml")
        for constraint in sorted(folder.glob("samples/*/constraint.yaml")):
            samples.append(load_yaml_text(constraint.read_text(), str(constraint)))
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe")
    for i in range(constraints):
        doc = copy.deepcopy(samples[i % len(samples)])
        doc["metadata"]["name"] = f"{doc['metadata']['name']}-{i}"
        doc.setdefault("spec", {}).setdefault("match", {}).pop("namespaces", None)
        # a unique (ignored) parameter: no two constraints share parameters, so no pair is deduplicated
        doc["spec"].setdefault("parameters", {})["benchId"] = i
        with (root / "policies" / f"constraint-{i}.yaml").open("w") as fh:
            yaml.dump(doc, fh)
    return root


def bench_gatekeeper(
    tmp: Path, objects: int = 1000, constraints: int = 50, distinct: int | None = None
) -> None:
    """Time ``evaluate``; ``distinct`` < ``objects`` models manifests rendered for many clusters."""
    rng = random.Random(7)
    base = _objects(distinct or objects, rng)
    objs = [copy.deepcopy(base[i % len(base)]) for i in range(objects)]
    root = _policy_tree(tmp, constraints)
    t0 = time.perf_counter()
    policy = load_policy(root, {})
    t1 = time.perf_counter()
    kinds = {c.kind for c in policy.constraints}
    pairs = sum(1 for c in policy.constraints for o in objs if matches(c.match, o, {}))
    shape = f"{distinct} distinct manifests rendered {objects // distinct}x" if distinct else "all distinct"
    n = len(policy.constraints)
    print(f"gatekeeper: {objects} objects ({shape}) x {n} constraints, {len(kinds)} templates, {pairs} pairs")
    print(f"  load policy{'':<35} {t1 - t0:7.3f} s")
    auto = default_workers(pairs)
    runs = [("1 process", 1), (f"default ({auto} process{'es' if auto > 1 else ''})", None)]
    if auto > 1:
        runs.append((f"default again (warm pool of {auto})", None))
    reference = None
    for label, workers in runs:
        start, c0 = time.perf_counter(), time.process_time()
        results = evaluate(policy, objs, workers=workers)
        wall, cpu = time.perf_counter() - start, time.process_time() - c0
        reference = results if reference is None else reference
        same = "" if results == reference else "  RESULTS DIFFER"
        print(
            f"  evaluate, {label:<34} {wall:7.3f} s   (CPU here {cpu:.3f} s; {len(results)} violations){same}"
        )


def _cluster(i: int, version: str = "1.34") -> str:
    env = ("dev", "staging", "prod")[i % 3]
    return f"""apiVersion: eks.aws.crossplane.io/v1beta1
kind: Cluster
metadata:
  name: cluster-{i:04d}
spec:
  forProvider:
    region: eu-west-1
    version: "{version}"
    roleArn: arn:aws:iam::111111111111:role/eks
    resourcesVpcConfig:
      subnetIds: [subnet-a, subnet-b, subnet-c]
    tags: {{team: t{i % 40}, environment: {env}, cost-center: cc-{i % 9}}}
---
apiVersion: eks.aws.crossplane.io/v1alpha1
kind: NodeGroup
metadata:
  name: cluster-{i:04d}-workers
spec:
  forProvider:
    region: eu-west-1
    clusterName: cluster-{i:04d}
    instanceTypes: [m6i.large]
    scalingConfig: {{minSize: 1, maxSize: 10, desiredSize: 3}}
    tags: {{team: t{i % 40}, environment: {env}, cost-center: cc-{i % 9}}}
"""


#: The fleet rules of the generated fleets (``.github/gitops-bot.yml``).
FLEET_CONFIG: dict[str, Any] = {
    "version": 1,
    "cluster_requests": {"paths": ["clusters/**"]},
    "fleet": {
        "allowed_regions": ["eu-west-1"],
        "allowed_instance_types": ["m6i.*"],
        "required_tags": ["team", "environment", "cost-center"],
        "environments": {
            "dev": {"max_nodes": 20},
            "staging": {"max_nodes": 40},
            "prod": {"max_nodes": 200},
        },
    },
}


def bench_fleet(tmp: Path, clusters: int = 500) -> None:
    config = FLEET_CONFIG
    base = tmp / "fleet-base"
    for i in range(clusters):
        env = ("dev", "staging", "prod")[i % 3]
        path = base / "clusters" / env / f"cluster-{i:04d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_cluster(i))
    head = tmp / "fleet-head"
    shutil.copytree(base, head)
    for label, number in (("new cluster", 9999), ("name already in the fleet", 42)):
        changed = f"clusters/dev/request-{number}.yaml"
        (head / changed).write_text(_cluster(number))
        check = CheckInput(base_dir=base, head_dir=head, config=config, changed_paths=(changed,))
        t0 = time.perf_counter()
        c0 = time.process_time()
        findings = validate(check, today=date(2026, 11, 21))
        t1 = time.perf_counter()
        cpu = time.process_time() - c0
        (head / changed).unlink()
        rules = sorted({f.rule for f in findings})
        print(f"validate: one-cluster request ({label}), {clusters}-cluster fleet ({clusters * 2} objects)")
        print(f"  validate           {t1 - t0:7.3f} s   (CPU {cpu:.3f} s; findings: {rules})")


def bench_full_check(tmp: Path, clusters: int = 500, apps: int = 20) -> None:
    """``gitops-bot check`` for a one-cluster request on the render benchmark's fleet.

    The fleet of bench/render_fleet.py (``clusters`` x ``apps`` Flux targets) plus, per cluster,
    its cluster request (Crossplane Cluster and NodeGroup), the Gatekeeper library templates
    with 50 constraints, and fleet rules in ``.github/gitops-bot.yml``. The pull request adds
    one new cluster request. Timed as a user runs it (``python -m bot check`` in a fresh
    process, twice) and in-process (cold parse memos, then warm), with every checker on.
    """
    sys.path.insert(0, str(ROOT / "bench"))
    import json
    import subprocess

    import render_fleet

    from bot.prchecks.build import build_check

    repo = tmp / "full-fleet"
    repo.mkdir()
    render_fleet.generate(repo, clusters, apps)
    for i in range(clusters):
        env = ("dev", "staging", "prod")[i % 3]
        path = repo / "clusters" / env / f"cluster-{i:04d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_cluster(i))
    shutil.copytree(_policy_tree(tmp / "policies-src", 50) / "policies", repo / "policies")
    config = FLEET_CONFIG
    (repo / ".github").mkdir(exist_ok=True)
    (repo / ".github" / "gitops-bot.yml").write_text(json.dumps(config, indent=2))

    git = render_fleet._git  # the fleet's own committer identity
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "cluster requests, policies, config")
    git(repo, "checkout", "-q", "-b", "request")
    (repo / "clusters" / "dev" / "cluster-9999.yaml").write_text(_cluster(9999))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "request cluster-9999")
    git(repo, "checkout", "-q", "main")
    files = sum(1 for _ in repo.rglob("*.yaml"))
    print(
        f"check: one-cluster request on a {clusters}-cluster x {apps}-app fleet ({files} YAML files, "
        f"{clusters} cluster requests, 50 constraints), every checker on"
    )
    command = [
        sys.executable,
        "-m",
        "bot",
        "check",
        "--repo",
        str(repo),
        "--base",
        "main",
        "--head",
        "request",
    ]
    command += ["--format", "json"]
    for label in ("fresh process", "fresh process again"):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - start
        report = json.loads(done.stdout)
        rules = sorted({f["rule"] for f in report["findings"]})
        print(f"  `gitops-bot check`, {label:<22}{wall:7.3f} s   (exit {done.returncode}; findings: {rules})")
    from bot.render_runtime.engine import forget_memos

    forget_memos()
    for label in ("in-process, cold memos", "in-process, warm"):
        start = time.perf_counter()
        result = build_check(repo, "main", "request", secret_key=b"bench")
        wall = time.perf_counter() - start
        rules = sorted({f.rule for f in result.report.findings})
        print(f"  build_check, {label:<29}{wall:7.3f} s   (findings: {rules})")


def main() -> int:
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f}")
    print("figures: wall-clock, then this process's CPU time (with worker processes most of the CPU is")
    print("theirs; the first run with them includes starting them)")
    with tempfile.TemporaryDirectory() as tmp:
        bench_gatekeeper(Path(tmp) / "a")
        bench_gatekeeper(Path(tmp) / "b", distinct=100)
        bench_fleet(Path(tmp))
        bench_full_check(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
