"""Which Kubernetes kinds are cluster-scoped: the one list rendering and policy share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "APIService",
        "ConstraintTemplate",
        "ResourceGraphDefinition",
        "ClusterSecretStore",
        "IngressClass",
        "RuntimeClass",
        "Node",
        "CSIDriver",
        "VolumeSnapshotClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "FlowSchema",
        "PriorityLevelConfiguration",
    }
)
CLUSTER_SCOPED_GROUPS = frozenset(
    {"constraints.gatekeeper.sh", "templates.gatekeeper.sh", "apiregistration.k8s.io"}
)


def is_cluster_scoped(obj: Mapping[str, Any]) -> bool:
    """Guess whether an object is cluster-scoped (no namespace is set on it).

    Known kinds, kinds named ``Cluster*`` (ClusterIssuer, ClusterSecretStore, ...), and
    Gatekeeper constraints. Anything else is treated as namespaced.
    """
    kind = str(obj.get("kind") or "")
    group = str(obj.get("apiVersion") or "").rpartition("/")[0]
    cluster_prefixed = kind.startswith("Cluster") and kind[7:8].isupper()  # ClusterIssuer, not Cluster
    return kind in CLUSTER_SCOPED or cluster_prefixed or group in CLUSTER_SCOPED_GROUPS
