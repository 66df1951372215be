"""Health from the Kubernetes API: Flux Kustomizations, Argo CD Applications, Flagger Canaries.

Uses the ``kubernetes`` client with a kubeconfig file (the bot's setting ``kubeconfig`` or
``$KUBECONFIG``) and one context per environment. The client is synchronous, so calls run in
a worker thread. An unreachable API server or a missing object is *pending* (not red): only
the objects themselves saying "failed" turn health red.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from bot.domain.promotion.environments import KubernetesHealth
from bot.domain.promotion.gates import GateState, HealthCheck
from bot.health.statuses import parse_time


@dataclass(frozen=True, slots=True)
class Kind:
    source: str
    group: str
    version: str
    plural: str
    default_namespace: str


KUSTOMIZATION = Kind("kustomization", "kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "flux-system")
APPLICATION = Kind("application", "argoproj.io", "v1alpha1", "applications", "argocd")
CANARY = Kind("canary", "flagger.app", "v1beta1", "canaries", "default")


def _split(ref: str, kind: Kind) -> tuple[str, str]:
    ns, _, name = ref.rpartition("/")
    return (ns or kind.default_namespace), name


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


Contains = Callable[[str], bool]
"""``contains(revision_sha)``: whether that later commit already includes the commit we ask about."""

_SHA = re.compile(r"[0-9a-f]{40}")


def _has_sha(revision: Any, sha: str, contains: Contains | None = None) -> bool:
    """Whether ``revision`` is ``sha`` or, with ``contains``, a later commit that includes it.

    Flux writes ``main@sha1:<sha>`` (v2.1+) or ``main/<sha>``; Argo CD the bare sha. A busy
    environment is often already at a newer commit than the one being promoted.
    """
    if not isinstance(revision, str) or not sha:
        return False
    if sha in revision:
        return True
    if contains is None:
        return False
    m = _SHA.search(revision)
    return m is not None and contains(m.group(0))


def kustomization_health(
    ref: str, obj: Mapping[str, Any], sha: str, contains: Contains | None = None
) -> HealthCheck:
    """Ready=True and ``status.lastAppliedRevision`` at ``sha``; Ready=False at ``sha`` is red."""
    status = obj.get("status") or {}
    ready = _condition(obj, "Ready")
    applied = status.get("lastAppliedRevision")
    attempted = status.get("lastAttemptedRevision")
    if ready is not None and ready.get("status") == "True" and _has_sha(applied, sha, contains):
        return HealthCheck(
            "kustomization",
            ref,
            GateState.PASS,
            f"Ready at {applied}",
            parse_time(ready.get("lastTransitionTime")),
        )
    if ready is not None and ready.get("status") == "False" and _has_sha(attempted, sha, contains):
        why = f"{ready.get('reason', '')}: {ready.get('message', '')}".strip(": ")
        return HealthCheck("kustomization", ref, GateState.FAIL, f"not Ready at {attempted} ({why})"[:300])
    at = applied or "no revision"
    return HealthCheck("kustomization", ref, GateState.PENDING, f"at {at}, waiting for {sha[:7]}")


def application_health(
    ref: str, obj: Mapping[str, Any], sha: str, contains: Contains | None = None
) -> HealthCheck:
    """Synced at ``sha`` (``status.sync.revision``) and Healthy; Degraded at ``sha`` is red."""
    status = obj.get("status") or {}
    sync = status.get("sync") or {}
    health = (status.get("health") or {}).get("status", "Unknown")
    revision = sync.get("revision") or ""
    revisions = sync.get("revisions") or []
    at_sha = _has_sha(revision, sha, contains) or any(_has_sha(r, sha, contains) for r in revisions)
    if not at_sha:
        return HealthCheck(
            "application",
            ref,
            GateState.PENDING,
            f"synced to {str(revision)[:12] or 'nothing'}, waiting for {sha[:7]}",
        )
    if health == "Degraded" or (status.get("operationState") or {}).get("phase") in ("Failed", "Error"):
        msg = (status.get("operationState") or {}).get("message") or health
        return HealthCheck("application", ref, GateState.FAIL, f"{health} at {sha[:7]}: {msg}"[:300])
    if sync.get("status") == "Synced" and health == "Healthy":
        since = None
        for h in status.get("history") or []:
            if _has_sha(h.get("revision"), sha, contains):
                since = parse_time(h.get("deployedAt"))
        since = since or parse_time(status.get("reconciledAt"))
        return HealthCheck("application", ref, GateState.PASS, f"Synced and Healthy at {sha[:7]}", since)
    return HealthCheck(
        "application", ref, GateState.PENDING, f"{sync.get('status', 'Unknown')}/{health} at {sha[:7]}"
    )


_CANARY_PENDING = {
    "Progressing",
    "Promoting",
    "Finalising",
    "Waiting",
    "WaitingPromotion",
    "Initializing",
    "",
}


def canary_health(ref: str, obj: Mapping[str, Any]) -> HealthCheck:
    """Phase Succeeded (or Initialized: nothing to analyse) is green, Failed is red, the rest waits."""
    status = obj.get("status") or {}
    phase = str(status.get("phase") or "")
    since = parse_time(status.get("lastTransitionTime"))
    if phase in ("Succeeded", "Initialized"):
        return HealthCheck("canary", ref, GateState.PASS, phase, since)
    if phase == "Failed":
        cond = _condition(obj, "Promoted") or {}
        return HealthCheck(
            "canary", ref, GateState.FAIL, f"Failed: {cond.get('message', 'canary analysis failed')}"[:300]
        )
    return HealthCheck("canary", ref, GateState.PENDING, phase or "no status yet")


def _fetch_all(
    kh: KubernetesHealth, sha: str, kubeconfig: str | None, contains: Contains | None
) -> list[HealthCheck]:
    wanted = (
        [(KUSTOMIZATION, r) for r in kh.kustomizations]
        + [(APPLICATION, r) for r in kh.applications]
        + [(CANARY, r) for r in kh.canaries]
    )
    try:
        api_client = config.new_client_from_config(config_file=kubeconfig, context=kh.context)
    except Exception as exc:  # the kubeconfig is the bot's own setting: say what is wrong with it
        why = f"cannot load kubeconfig context {kh.context!r}: {type(exc).__name__}"
        return [HealthCheck(kind.source, ref, GateState.PENDING, why) for kind, ref in wanted]
    out: list[HealthCheck] = []
    with api_client:
        api = client.CustomObjectsApi(api_client)
        for kind, ref in wanted:
            ns, name = _split(ref, kind)
            try:
                raw = api.get_namespaced_custom_object(
                    kind.group, kind.version, ns, kind.plural, name, _request_timeout=10
                )
            except ApiException as exc:
                detail = "not found" if exc.status == 404 else f"API error {exc.status} {exc.reason}"
                out.append(
                    HealthCheck(kind.source, ref, GateState.PENDING, f"{detail} in context {kh.context}")
                )
                continue
            except Exception as exc:  # connection refused, TLS, timeouts: wait, never crash
                out.append(
                    HealthCheck(
                        kind.source,
                        ref,
                        GateState.PENDING,
                        f"cannot reach context {kh.context}: {type(exc).__name__}",
                    )
                )
                continue
            obj: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
            if kind is KUSTOMIZATION:
                out.append(kustomization_health(ref, obj, sha, contains))
            elif kind is APPLICATION:
                out.append(application_health(ref, obj, sha, contains))
            else:
                out.append(canary_health(ref, obj))
    return out


async def kubernetes_health(
    kh: KubernetesHealth, sha: str, *, kubeconfig: str | None = None, contains: Contains | None = None
) -> list[HealthCheck]:
    """Read every configured object in ``kh.context`` and judge it at commit ``sha``.

    ``kubeconfig`` None means the client's default (``$KUBECONFIG`` or ``~/.kube/config``).
    ``contains`` lets an object at a newer revision that includes ``sha`` count as at ``sha``.
    """
    return await asyncio.to_thread(_fetch_all, kh, sha, kubeconfig, contains)
