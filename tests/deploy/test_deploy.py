"""The deployment assets: the kustomize base and overlays render, and say what docs/deploy.md says."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest

from bot.domain.yamlio import load_documents, to_plain
from tests.conftest import ROOT

KUBECTL = shutil.which("kubectl")
KUSTOMIZE = shutil.which("kustomize")
pytestmark = pytest.mark.skipif(not (KUBECTL or KUSTOMIZE), reason="needs kubectl or kustomize on PATH")


def render(path: str) -> dict[tuple[str, str], dict[str, Any]]:
    argv = [KUSTOMIZE, "build", path] if KUSTOMIZE else [str(KUBECTL), "kustomize", path]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    objects = [to_plain(d.data) for d in load_documents(out.stdout, path)]
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def pod(objects: dict[tuple[str, str], dict[str, Any]], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = objects[("Deployment", name)]["spec"]["template"]["spec"]
    return spec


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_base_renders_web_and_worker_sharing_postgres() -> None:
    objs = render("deploy/base")
    assert set(objs) >= {
        ("Deployment", "gitops-bot-web"),
        ("Deployment", "gitops-bot-worker"),
        ("Service", "gitops-bot-web"),
        ("ConfigMap", "gitops-bot"),
        ("PodDisruptionBudget", "gitops-bot-web"),
        ("HorizontalPodAutoscaler", "gitops-bot-web"),
        ("HorizontalPodAutoscaler", "gitops-bot-worker"),
    }
    assert not [k for k in objs if k[0] == "Secret"], "the base references the Secret, it holds no value"
    web = pod(objs, "gitops-bot-web")["containers"][0]
    worker = pod(objs, "gitops-bot-worker")["containers"][0]
    assert web["args"] == ["serve", "--worker", "off"]
    assert env_of(web)["GITOPS_BOT_WORKER"] == "off"
    assert worker["args"] == ["worker"]
    for c in (web, worker):
        assert env_of(c)["DATABASE_URL"] == {"secretKeyRef": {"name": "gitops-bot", "key": "database-url"}}
        assert c["image"] == "ghcr.io/example/gitops-bot:0.1.0"
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # Workers serve their probes on the health port the worker command listens on by default.
    from bot.service.settings import Settings

    health = {p["name"]: p["containerPort"] for p in worker["ports"]}["health"]
    assert health == Settings(webhook_secret=b"x").health_port
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert worker[probe]["httpGet"] == {"path": path, "port": "health"}
    worker_policy = objs[("NetworkPolicy", "gitops-bot-worker")]["spec"]["ingress"]
    assert [p["port"] for rule in worker_policy for p in rule["ports"]] == [health]
    assert objs[("Deployment", "gitops-bot-web")]["spec"]["replicas"] >= 2, "several web replicas"


def test_selectors_match_their_pods() -> None:
    objs = render("deploy/base")
    labels = {
        name: objs[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        for name in ("gitops-bot-web", "gitops-bot-worker")
    }

    def selects(selector: dict[str, str], name: str) -> bool:
        return all(labels[name].get(k) == v for k, v in selector.items())

    assert selects(objs[("Service", "gitops-bot-web")]["spec"]["selector"], "gitops-bot-web")
    assert not selects(objs[("Service", "gitops-bot-web")]["spec"]["selector"], "gitops-bot-worker")
    for name in labels:
        assert selects(objs[("PodDisruptionBudget", name)]["spec"]["selector"]["matchLabels"], name)
        assert objs[("HorizontalPodAutoscaler", name)]["spec"]["scaleTargetRef"]["name"] == name
        dep = objs[("Deployment", name)]
        assert selects(dep["spec"]["selector"]["matchLabels"], name)
        spec = dep["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False


def test_postgres_overlay_adds_a_database_reached_by_the_bot() -> None:
    objs = render("deploy/overlays/postgres-in-cluster")
    sts = objs[("StatefulSet", "gitops-bot-postgres")]
    env = env_of(sts["spec"]["template"]["spec"]["containers"][0])
    assert env["POSTGRES_PASSWORD"] == {"secretKeyRef": {"name": "gitops-bot-postgres", "key": "password"}}
    assert ("Service", "gitops-bot-postgres") in objs
    assert ("Deployment", "gitops-bot-worker") in objs


def test_sqlite_overlay_is_one_pod_with_the_worker_inside() -> None:
    objs = render("deploy/overlays/sqlite-single")
    assert ("Deployment", "gitops-bot-worker") not in objs
    assert not [k for k in objs if k[0] == "HorizontalPodAutoscaler"], "SQLite must not be scaled out"
    web = objs[("Deployment", "gitops-bot-web")]
    assert web["spec"]["replicas"] == 1 and web["spec"]["strategy"] == {"type": "Recreate"}
    container = web["spec"]["template"]["spec"]["containers"][0]
    env = env_of(container)
    assert container["args"] == ["serve"] and env["GITOPS_BOT_WORKER"] == "inline"
    assert env["DATABASE_URL"].startswith("sqlite:////var/lib/gitops-bot/state/")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/var/lib/gitops-bot/state" in mounts


def test_dockerfile_runs_serve_as_an_unprivileged_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", text, re.M)
    assert "python:3.11-slim" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and not users[-1].startswith(("0", "root"))
    assert re.search(r'^CMD \["serve"\]$', text, re.M)
    assert "sha256sum -c" in text, "the kustomize download is verified"
    ignored = (ROOT / ".dockerignore").read_text().split()
    for must in (".git", "tests", "*.pem", "*.db", ".env*"):
        assert must in ignored


def test_keda_overlay_scales_workers_on_the_pending_queue() -> None:
    from bot.service.metrics import Metrics

    objs = render("deploy/overlays/keda-queue-depth")
    assert ("HorizontalPodAutoscaler", "gitops-bot-worker") not in objs, "KEDA owns the worker's HPA"
    assert ("HorizontalPodAutoscaler", "gitops-bot-web") in objs
    scaled = objs[("ScaledObject", "gitops-bot-worker")]["spec"]
    assert ("Deployment", scaled["scaleTargetRef"]["name"]) in objs
    assert 2 <= scaled["minReplicaCount"] < scaled["maxReplicaCount"]
    (prom,) = [t for t in scaled["triggers"] if t["type"] == "prometheus"]
    query = prom["metadata"]["query"]
    assert query == 'max(gitops_bot_queue_depth{status="pending"})'
    metrics = Metrics()
    metrics.queue_depth.labels(status="pending").set(3)
    assert 'gitops_bot_queue_depth{status="pending"} 3.0' in metrics.render().decode()
