"""Changes that destroy or replace: the danger report at the top of the diff.

:func:`find_dangers` compares one target's rendered objects at base and head and returns a
:class:`Danger` per change a reviewer must not miss. Each rule is one row of a table:

* ``delete.cluster``, ``delete.nodegroup``, ``delete.addon``: a cluster request, node group or
  add-on removed (what it runs goes with it);
* ``replace.cluster``: an immutable field of a cluster request changed (name, region, VPC,
  subnets, network config, role; EKS through ACK, Crossplane or a kro instance): the
  provider replaces the cluster or refuses the change;
* ``replace.selector``, ``replace.volume-claims``, ``replace.service``: a workload's selector,
  a StatefulSet's volumeClaimTemplates, a Service's clusterIP or type changed (immutable:
  the object must be deleted and created again);
* ``delete.namespace``, ``delete.crd``: a Namespace or CRD removed, with how many objects
  of this revision go with it;
* ``delete.prune``: a pruning Flux Kustomization removed, or a Flux target that rendered
  objects renders none (everything it applied is pruned);
* ``suspend``: Flux objects suspended, Argo CD automated sync switched off.

Pure: objects in, dangers out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Danger:
    """One destroying or replacing change, where it lands and why it is dangerous."""

    rule: str
    cluster: str
    kind: str
    name: str
    path: str
    message: str
    env: str = ""
    namespace: str = ""

    def sort_key(self) -> tuple[str, str, str, str, str, str]:
        return (self.env, self.cluster, self.rule, self.kind, self.namespace, self.name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Where:
    """The target the objects belong to: its cluster, environment, defining path and engine."""

    cluster: str
    env: str
    path: str
    kind: str = ""


def _group(obj: Obj) -> str:
    api = str(obj.get("apiVersion") or "")
    return api.rsplit("/", 1)[0] if "/" in api else ""


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec(obj: Obj) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _key(obj: Obj) -> tuple[str, str, str, str]:
    meta = _meta(obj)
    return (
        _group(obj),
        str(obj.get("kind") or ""),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
    )


def _dig(value: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


# ---------------------------------------------------------------- what an object is

NODEGROUP_KINDS = frozenset({"Nodegroup", "NodeGroup", "ManagedNodeGroup", "NodePool", "FargateProfile"})
WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
ARGO_FINALIZER = "resources-finalizer.argocd.argoproj.io"


def is_cluster_request(obj: Obj) -> bool:
    """A cluster request: ACK/Crossplane/CAPI ``Cluster`` or a kind named ``...Cluster`` (kro, XRDs)."""
    kind = str(obj.get("kind") or "")
    return (kind.endswith("Cluster") and bool(_group(obj)) and not _group(obj).endswith("k8s.io")) or (
        kind == "Cluster" and _group(obj) == "cluster.x-k8s.io"
    )


def is_nodegroup(obj: Obj) -> bool:
    kind = str(obj.get("kind") or "")
    return bool(_group(obj)) and (kind in NODEGROUP_KINDS or kind.endswith("NodeGroup"))


def is_addon(obj: Obj) -> bool:
    """An EKS add-on, a Flux HelmRelease (uninstalled on deletion), an Argo CD app that cascades."""
    kind, group = str(obj.get("kind") or ""), _group(obj)
    if kind == "Addon" and "eks" in group:
        return True
    if kind == "HelmRelease" and group.endswith("fluxcd.io"):
        return True
    finalizers = _meta(obj).get("finalizers") or []
    return (
        kind == "Application" and group == "argoproj.io" and any(ARGO_FINALIZER in str(f) for f in finalizers)
    )


# Fields the EKS API (and so ACK and Crossplane) cannot change on a cluster: a new value means a new
# cluster, or a failed apply. Names as the CRDs and the kro instances of this fleet spell them.
IMMUTABLE_ANYWHERE = frozenset(
    {
        "region",
        "vpcId",
        "vpcID",
        "vpc",
        "vpcConfig",
        "resourcesVPCConfig",
        "resourcesVpcConfig",
        "subnetIds",
        "subnetIDs",
        "subnetIdRefs",
        "subnets",
        "kubernetesNetworkConfig",
        "serviceIPv4CIDR",
        "serviceIpv4Cidr",
        "ipFamily",
        "roleARN",
        "roleArn",
        "roleRef",
    }
)
IMMUTABLE_AT = (("spec", "name"), ("spec", "clusterName"), ("spec", "forProvider", "name"))
EXTERNAL_NAME = "crossplane.io/external-name"


def _leaves(value: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(value, Mapping):
        out: dict[tuple[str, ...], Any] = {}
        for k, v in value.items():
            out.update(_leaves(v, (*path, str(k))))
        return out or {path: {}}
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_leaves(v, (*path, f"[{i}]")))
        return out or {path: []}
    return {path: value}


def immutable_changes(old: Obj, new: Obj) -> list[str]:
    """Return the dotted paths of immutable cluster fields that differ (sorted, folded per field)."""
    before, after = _leaves(old.get("spec")), _leaves(new.get("spec"))
    changed: set[str] = set()
    for path in set(before) | set(after):
        if before.get(path) == after.get(path):
            continue
        full = ("spec", *path)
        for i, part in enumerate(full):
            if part in IMMUTABLE_ANYWHERE or full[: i + 1] in IMMUTABLE_AT:
                changed.add(".".join(full[: i + 1]))
                break
    if _meta(old).get("annotations", {}).get(EXTERNAL_NAME) != _meta(new).get("annotations", {}).get(
        EXTERNAL_NAME
    ):
        changed.add(f"metadata.annotations[{EXTERNAL_NAME}]")
    return sorted(changed)


# ---------------------------------------------------------------- the rules

Removed = Callable[[Obj, list[Obj]], str | None]
Changed = Callable[[Obj, Obj], str | None]


def _count_in_namespace(obj: Obj, base: list[Obj]) -> str | None:
    if obj.get("kind") != "Namespace" or _group(obj):
        return None
    name = _meta(obj).get("name")
    n = sum(1 for o in base if _meta(o).get("namespace") == name)
    return f"Namespace deleted: Kubernetes deletes every object in it ({n} in this revision's render)"


def _count_of_crd(obj: Obj, base: list[Obj]) -> str | None:
    if obj.get("kind") != "CustomResourceDefinition":
        return None
    spec = _spec(obj)
    group, kind = spec.get("group"), _dig(spec, "names", "kind")
    n = sum(1 for o in base if _group(o) == group and o.get("kind") == kind)
    return (
        f"CRD deleted: every {kind} object in the cluster is deleted with it ({n} in this revision's render)"
    )


def _pruning_kustomization(obj: Obj, _base: list[Obj]) -> str | None:
    if (
        obj.get("kind") == "Kustomization"
        and _group(obj) == "kustomize.toolkit.fluxcd.io"
        and _spec(obj).get("prune")
    ):
        return "pruning Flux Kustomization removed: Flux deletes everything it applied"
    return None


REMOVED_RULES: tuple[tuple[str, Removed], ...] = (
    (
        "delete.cluster",
        lambda o, _b: (
            "cluster request deleted: the cluster and everything on it go" if is_cluster_request(o) else None
        ),
    ),
    (
        "delete.nodegroup",
        lambda o, _b: "node group deleted: its nodes are drained and terminated" if is_nodegroup(o) else None,
    ),
    (
        "delete.addon",
        lambda o, _b: "add-on deleted: what it installed is uninstalled" if is_addon(o) else None,
    ),
    ("delete.namespace", _count_in_namespace),
    ("delete.crd", _count_of_crd),
    ("delete.prune", _pruning_kustomization),
)


def _replaced_cluster(old: Obj, new: Obj) -> str | None:
    if not is_cluster_request(new):
        return None
    fields = immutable_changes(old, new)
    if not fields:
        return None
    shown = ", ".join(f"`{f}`" for f in fields)
    return f"immutable cluster field(s) changed: {shown}; the cluster is replaced or the change fails"


def _selector(old: Obj, new: Obj) -> str | None:
    if new.get("kind") not in WORKLOADS or _group(new) not in ("apps", "batch"):
        return None
    if _spec(old).get("selector") != _spec(new).get("selector"):
        return f"{new.get('kind')} selector changed: immutable, the object must be deleted and recreated"
    return None


def _volume_claims(old: Obj, new: Obj) -> str | None:
    if new.get("kind") != "StatefulSet":
        return None
    if _spec(old).get("volumeClaimTemplates") != _spec(new).get("volumeClaimTemplates"):
        return (
            "StatefulSet volumeClaimTemplates changed: immutable; the StatefulSet must be recreated "
            "and volumes may be lost"
        )
    return None


def _service(old: Obj, new: Obj) -> str | None:
    if new.get("kind") != "Service" or _group(new):
        return None
    a, b = _spec(old), _spec(new)
    what = []
    if a.get("clusterIP") and a.get("clusterIP") != b.get("clusterIP"):
        what.append(f"clusterIP {a.get('clusterIP')} → {b.get('clusterIP') or '(none)'}")
    if (a.get("type") or "ClusterIP") != (b.get("type") or "ClusterIP"):
        what.append(f"type {a.get('type') or 'ClusterIP'} → {b.get('type') or 'ClusterIP'}")
    if not what:
        return None
    return f"Service {', '.join(what)}: the Service is replaced (new address, load balancer recreated)"


def _suspended(old: Obj, new: Obj) -> str | None:
    group, kind = _group(new), str(new.get("kind") or "")
    if group.endswith("fluxcd.io") and not _spec(old).get("suspend") and _spec(new).get("suspend"):
        return f"Flux {kind} suspended: Flux stops reconciling it (drift and fixes are no longer applied)"
    if group == "argoproj.io" and kind in ("Application", "ApplicationSet"):
        base = ("spec", "template", "spec") if kind == "ApplicationSet" else ("spec",)
        was, now = _dig(old, *base, "syncPolicy", "automated"), _dig(new, *base, "syncPolicy", "automated")
        on_before = isinstance(was, Mapping) and was.get("enabled", True) is not False
        on_after = isinstance(now, Mapping) and now.get("enabled", True) is not False
        if on_before and not on_after:
            return f"Argo CD {kind}: automated sync switched off; changes are no longer applied by themselves"
    return None


CHANGED_RULES: tuple[tuple[str, Changed], ...] = (
    ("replace.cluster", _replaced_cluster),
    ("replace.selector", _selector),
    ("replace.volume-claims", _volume_claims),
    ("replace.service", _service),
    ("suspend", _suspended),
)


def find_dangers(where: Where, base: Iterable[Obj], head: Iterable[Obj]) -> list[Danger]:
    """Return the dangers of one target going from ``base`` to ``head`` objects, sorted."""
    base_list, head_list = list(base), list(head)
    before = {_key(o): o for o in base_list}
    after = {_key(o): o for o in head_list}
    found: list[Danger] = []

    def add(rule: str, obj: Obj, message: str) -> None:
        _, kind, ns, name = _key(obj)
        found.append(Danger(rule, where.cluster, kind, name, where.path, message, where.env, ns))

    for key, old in before.items():
        new = after.get(key)
        if new is None:
            for rule, removed in REMOVED_RULES:
                message = removed(old, base_list)
                if message:
                    add(rule, old, message)
        elif new != old:
            for rule, changed in CHANGED_RULES:
                message = changed(old, new)
                if message:
                    add(rule, new, message)
    if where.kind == "flux" and base_list and not head_list:
        found.append(
            Danger(
                "delete.prune",
                where.cluster,
                "Kustomization",
                "",
                where.path,
                f"this Flux target rendered {len(base_list)} object(s) and now renders none: "
                "with prune, Flux deletes them all",
                where.env,
            )
        )
    return sorted(found, key=Danger.sort_key)


UNRENDERED = "not rendered"
"""The cluster column of a danger found in a file no target renders."""

_REQUEST_RULES = ("delete.cluster", "delete.nodegroup", "replace.cluster")


def file_dangers(
    path: str, base: Iterable[Obj], head: Iterable[Obj], found: Iterable[Danger]
) -> list[Danger]:
    """The cluster-request dangers of one changed file, read as written, that rendering did not find.

    A cluster request that no kustomization, Flux or Argo CD object renders (a folder a
    controller elsewhere applies) yields no rendered objects, so its removal would pass as no
    danger at all and a ``when: dangerous`` approval rule would not wait: fail closed by
    judging the file itself, unless a target already reported the same object.
    """
    seen = {(d.rule, d.kind, d.namespace, d.name) for d in found}
    requests = [o for o in (*base, *head) if is_cluster_request(o) or is_nodegroup(o)]
    if not requests:
        return []
    out = find_dangers(Where(UNRENDERED, "", path), base, head)
    return [d for d in out if d.rule in _REQUEST_RULES and (d.rule, d.kind, d.namespace, d.name) not in seen]
