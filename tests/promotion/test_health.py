"""Health facts from GitHub statuses/check runs and from the Kubernetes API (a real client, a test server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.domain.promotion.environments import KubernetesHealth
from bot.domain.promotion.gates import GateState
from bot.health.kube import kubernetes_health
from bot.health.statuses import health_from_github
from tests.promotion.kubeapi import FakeKubeAPI

SHA = "4f2c9a1b7d3e5f60718293a4b5c6d7e8f9012345"
OLD = "0000000000000000000000000000000000000000"


def test_statuses_and_check_runs_per_context() -> None:
    statuses = [
        {
            "context": "flux/apps",
            "state": "success",
            "description": "Reconciliation finished",
            "updated_at": "2026-11-18T10:00:00Z",
        },
        {"context": "flux/apps", "state": "pending", "updated_at": "2026-11-18T09:58:00Z"},
        {"context": "other", "state": "failure"},
    ]
    runs = [
        {
            "name": "argocd/app-dev",
            "status": "completed",
            "conclusion": "failure",
            "completed_at": "2026-11-18T10:01:00Z",
        },
        {"name": "smoke", "status": "in_progress"},
    ]
    checks = health_from_github(["flux/apps", "argocd/app-dev", "smoke", "missing"], statuses, runs)
    by = {c.name: c for c in checks}
    assert by["flux/apps"].state is GateState.PASS
    assert by["flux/apps"].since == datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
    assert by["argocd/app-dev"].state is GateState.FAIL and by["argocd/app-dev"].source == "check_run"
    assert by["smoke"].state is GateState.PENDING and by["smoke"].detail == "in_progress"
    assert by["missing"].state is GateState.PENDING and by["missing"].detail == "no status yet"
    assert "other" not in by


def test_newer_check_run_beats_older_status() -> None:
    statuses = [{"context": "flux/apps", "state": "failure", "updated_at": "2026-11-18T10:00:00Z"}]
    runs = [
        {
            "name": "flux/apps",
            "status": "completed",
            "conclusion": "success",
            "completed_at": "2026-11-18T10:05:00Z",
        }
    ]
    (check,) = health_from_github(["flux/apps"], statuses, runs)
    assert check.state is GateState.PASS


def _kustomization(ready: str, applied: str, attempted: str | None = None, message: str = "") -> dict:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system"},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready,
                    "reason": "ReconciliationSucceeded" if ready == "True" else "BuildFailed",
                    "message": message,
                    "lastTransitionTime": "2026-11-18T10:00:00Z",
                }
            ],
            "lastAppliedRevision": f"main@sha1:{applied}",
            "lastAttemptedRevision": f"main@sha1:{attempted or applied}",
        },
    }


def _application(sync: str, health: str, revision: str) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "fleet", "namespace": "argocd"},
        "status": {
            "sync": {"status": sync, "revision": revision},
            "health": {"status": health},
            "history": [{"revision": revision, "deployedAt": "2026-11-18T10:02:00Z", "id": 3}],
            "reconciledAt": "2026-11-18T10:03:00Z",
        },
    }


def _canary(phase: str) -> dict:
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "status": {
            "phase": phase,
            "lastTransitionTime": "2026-11-18T10:04:00Z",
            "conditions": [
                {
                    "type": "Promoted",
                    "status": "False",
                    "message": "Canary analysis failed, Deployment scaled to zero.",
                }
            ],
        },
    }


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[tuple[FakeKubeAPI, Path]]:
    api = FakeKubeAPI()
    await api.start()
    cfg = api.kubeconfig(tmp_path / "kubeconfig", "staging-admin")
    yield api, cfg
    await api.stop()


KH = KubernetesHealth(
    context="staging-admin",
    kustomizations=("apps",),
    applications=("argocd/fleet",),
    canaries=("test/podinfo",),
)


async def test_all_green_at_the_commit(kube: tuple[FakeKubeAPI, Path]) -> None:
    api, cfg = kube
    api.put_kustomization(
        "apps",
        _kustomization("True", SHA),
    )
    api.put_application("argocd/fleet", _application("Synced", "Healthy", SHA))
    api.put_canary("test/podinfo", _canary("Succeeded"))
    checks = await kubernetes_health(KH, SHA, kubeconfig=str(cfg))
    assert [(c.source, c.state) for c in checks] == [
        ("kustomization", GateState.PASS),
        ("application", GateState.PASS),
        ("canary", GateState.PASS),
    ]
    assert checks[1].since == datetime(2026, 11, 18, 10, 2, tzinfo=UTC)  # deployedAt of that revision
    assert "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps" in api.requests
    assert "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/fleet" in api.requests
    assert "/apis/flagger.app/v1beta1/namespaces/test/canaries/podinfo" in api.requests


async def test_old_revision_waits_and_failures_are_red(kube: tuple[FakeKubeAPI, Path]) -> None:
    api, cfg = kube
    api.put_kustomization(
        "apps",
        _kustomization("True", OLD),
    )
    api.put_application(
        "argocd/fleet",
        _application("OutOfSync", "Healthy", OLD),
    )
    api.put_canary("test/podinfo", _canary("Progressing"))
    checks = await kubernetes_health(KH, SHA, kubeconfig=str(cfg))
    assert all(c.state is GateState.PENDING for c in checks), checks
    assert "waiting for 4f2c9a1" in checks[0].detail

    api.put_kustomization(
        "apps",
        _kustomization("False", OLD, attempted=SHA, message="dry-run failed: unknown field"),
    )
    api.put_application("argocd/fleet", _application("Synced", "Degraded", SHA))
    api.put_canary("test/podinfo", _canary("Failed"))
    red = await kubernetes_health(KH, SHA, kubeconfig=str(cfg))
    assert all(c.state is GateState.FAIL for c in red), red
    assert "dry-run failed" in red[0].detail
    assert "Degraded" in red[1].detail
    assert "Canary analysis failed" in red[2].detail


async def test_missing_objects_and_unreachable_cluster_wait(kube: tuple[FakeKubeAPI, Path]) -> None:
    _api, cfg = kube
    checks = await kubernetes_health(KH, SHA, kubeconfig=str(cfg))
    assert all(c.state is GateState.PENDING and "not found" in c.detail for c in checks)
    gone = KubernetesHealth(context="unreachable", kustomizations=("apps",))
    (c,) = await kubernetes_health(gone, SHA, kubeconfig=str(cfg))
    assert c.state is GateState.PENDING and "cannot reach context unreachable" in c.detail
    bad = KubernetesHealth(context="no-such-context", kustomizations=("apps",))
    (c,) = await kubernetes_health(bad, SHA, kubeconfig=str(cfg))
    assert c.state is GateState.PENDING and "cannot load kubeconfig context" in c.detail
