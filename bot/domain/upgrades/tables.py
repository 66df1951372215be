"""Bundled tables for upgrade plans: Kubernetes API removals and EKS add-on versions (pure data).

API removals are transcribed from the Kubernetes "Deprecated API Migration Guide"
(https://kubernetes.io/docs/reference/using-api/deprecation-guide/), the same source pluto and
kubent use. Only APIs that a release stops *serving* are listed; a deprecation alone does not
break an upgrade.

Add-on versions are the "latest version of the Amazon EKS add-on type for each Kubernetes
version" tables of the Amazon EKS User Guide pages "Manage kube-proxy in Amazon EKS clusters"
and "Manage CoreDNS for DNS in Amazon EKS clusters", as published in late 2026. Only add-ons
whose supported versions depend on the Kubernetes minor are listed; others (the VPC CNI, the
EBS CSI driver, the Pod Identity agent) support every version in standard support and keep
their version unless AWS says otherwise (``describe_addon_versions``, when AWS is configured).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Removal:
    """An API that Kubernetes stops serving in ``removed_in``, and what to use instead."""

    api_version: str
    kind: str
    removed_in: tuple[int, int]
    replacement: str


def _r(api_version: str, kinds: str, removed_in: str, replacement: str) -> tuple[Removal, ...]:
    major, minor = (int(p) for p in removed_in.split("."))
    return tuple(Removal(api_version, k, (major, minor), replacement) for k in kinds.split())


#: Served-API removals by Kubernetes release.
REMOVALS: tuple[Removal, ...] = (
    # 1.16
    *_r("extensions/v1beta1", "Deployment DaemonSet ReplicaSet", "1.16", "apps/v1"),
    *_r("apps/v1beta1", "Deployment StatefulSet ReplicaSet", "1.16", "apps/v1"),
    *_r("apps/v1beta2", "Deployment StatefulSet ReplicaSet DaemonSet", "1.16", "apps/v1"),
    *_r("extensions/v1beta1", "NetworkPolicy", "1.16", "networking.k8s.io/v1"),
    *_r("extensions/v1beta1", "PodSecurityPolicy", "1.16", "policy/v1beta1"),
    # 1.22
    *_r("admissionregistration.k8s.io/v1beta1", "MutatingWebhookConfiguration", "1.22", ""),
    *_r("admissionregistration.k8s.io/v1beta1", "ValidatingWebhookConfiguration", "1.22", ""),
    *_r("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition", "1.22", "apiextensions.k8s.io/v1"),
    *_r("apiregistration.k8s.io/v1beta1", "APIService", "1.22", "apiregistration.k8s.io/v1"),
    *_r("authentication.k8s.io/v1beta1", "TokenReview", "1.22", "authentication.k8s.io/v1"),
    *_r(
        "authorization.k8s.io/v1beta1",
        "SubjectAccessReview LocalSubjectAccessReview SelfSubjectAccessReview",
        "1.22",
        "authorization.k8s.io/v1",
    ),
    *_r("certificates.k8s.io/v1beta1", "CertificateSigningRequest", "1.22", "certificates.k8s.io/v1"),
    *_r("coordination.k8s.io/v1beta1", "Lease", "1.22", "coordination.k8s.io/v1"),
    *_r("extensions/v1beta1", "Ingress", "1.22", "networking.k8s.io/v1"),
    *_r("networking.k8s.io/v1beta1", "Ingress IngressClass", "1.22", "networking.k8s.io/v1"),
    *_r(
        "rbac.authorization.k8s.io/v1beta1",
        "ClusterRole ClusterRoleBinding Role RoleBinding",
        "1.22",
        "rbac.authorization.k8s.io/v1",
    ),
    *_r("scheduling.k8s.io/v1beta1", "PriorityClass", "1.22", "scheduling.k8s.io/v1"),
    *_r(
        "storage.k8s.io/v1beta1",
        "CSIDriver CSINode StorageClass VolumeAttachment",
        "1.22",
        "storage.k8s.io/v1",
    ),
    # 1.25
    *_r("batch/v1beta1", "CronJob", "1.25", "batch/v1"),
    *_r("discovery.k8s.io/v1beta1", "EndpointSlice", "1.25", "discovery.k8s.io/v1"),
    *_r("events.k8s.io/v1beta1", "Event", "1.25", "events.k8s.io/v1"),
    *_r("autoscaling/v2beta1", "HorizontalPodAutoscaler", "1.25", "autoscaling/v2"),
    *_r("policy/v1beta1", "PodDisruptionBudget", "1.25", "policy/v1"),
    *_r("policy/v1beta1", "PodSecurityPolicy", "1.25", "Pod Security Admission (no API object)"),
    *_r("node.k8s.io/v1beta1", "RuntimeClass", "1.25", "node.k8s.io/v1"),
    # 1.26
    *_r(
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "FlowSchema PriorityLevelConfiguration",
        "1.26",
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    *_r("autoscaling/v2beta2", "HorizontalPodAutoscaler", "1.26", "autoscaling/v2"),
    # 1.27
    *_r("storage.k8s.io/v1beta1", "CSIStorageCapacity", "1.27", "storage.k8s.io/v1"),
    # 1.29
    *_r(
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "FlowSchema PriorityLevelConfiguration",
        "1.29",
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    # 1.32
    *_r(
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "FlowSchema PriorityLevelConfiguration",
        "1.32",
        "flowcontrol.apiserver.k8s.io/v1",
    ),
)

REMOVALS_BY_KEY: dict[tuple[str, str], Removal] = {(r.api_version, r.kind): r for r in REMOVALS}

#: EKS add-on name -> Kubernetes minor -> latest add-on version AWS lists for it.
ADDON_VERSIONS: dict[str, dict[str, str]] = {
    "kube-proxy": {
        "1.35": "v1.35.3-eksbuild.2",
        "1.34": "v1.34.6-eksbuild.2",
        "1.33": "v1.33.10-eksbuild.2",
        "1.32": "v1.32.13-eksbuild.5",
        "1.31": "v1.31.14-eksbuild.9",
        "1.30": "v1.30.14-eksbuild.28",
        "1.29": "v1.29.15-eksbuild.16",
        "1.28": "v1.28.15-eksbuild.31",
    },
    "coredns": {
        "1.35": "v1.13.2-eksbuild.4",
        "1.34": "v1.13.2-eksbuild.4",
        "1.33": "v1.13.2-eksbuild.4",
        "1.32": "v1.11.4-eksbuild.33",
        "1.31": "v1.11.4-eksbuild.33",
        "1.30": "v1.11.4-eksbuild.33",
        "1.29": "v1.11.4-eksbuild.24",
        "1.28": "v1.10.1-eksbuild.38",
    },
}


def merged_addon_table(
    bundled: Mapping[str, Mapping[str, str]], overrides: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, str]]:
    """``bundled`` (add-on -> Kubernetes minor -> version) with ``overrides`` winning where they say."""
    table = {name: dict(versions) for name, versions in bundled.items()}
    for name, versions in overrides.items():
        table.setdefault(name, {}).update(versions)
    return table
