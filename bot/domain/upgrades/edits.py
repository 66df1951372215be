"""The file changes of each upgrade step, as text in and text out (pure; comments and order kept).

Every edit goes through ruamel.yaml's round-trip mode, so a step's pull request changes only the
values it must (a version, a weight) and keeps the file's comments, quoting and key order. The
handler reads the files at the environment branch's tip, calls :func:`step_changes` and commits
what it returns (``None`` deletes a file).

Traffic presets, per object, by the cluster it routes to:

- ``external-dns``: objects annotated ``external-dns.alpha.kubernetes.io/set-identifier: <cluster>``
  carry the weight in ``external-dns.alpha.kubernetes.io/aws-weight`` (a string);
- ``route53-recordset``: ACK ``RecordSet`` objects with ``spec.setIdentifier: <cluster>`` carry it
  in ``spec.weight``;
- ``alb-target-group``: AWS Load Balancer Controller weighted forwarding: an Ingress annotation
  ``alb.ingress.kubernetes.io/actions.<name>`` whose ``forwardConfig.targetGroups`` entries name
  the cluster in ``serviceName`` (``<service>-<cluster>``) or ``targetGroupARN``/``targetGroupName``;
- ``fields``: any ``kind`` with ``cluster_field`` naming the cluster and ``weight_field`` the weight.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bot.domain.upgrades.campaign import Campaign, CampaignStep
from bot.domain.upgrades.plan import green_path
from bot.domain.validate.fleet import split_path

EXTERNAL_DNS_ID = "external-dns.alpha.kubernetes.io/set-identifier"
EXTERNAL_DNS_WEIGHT = "external-dns.alpha.kubernetes.io/aws-weight"
ALB_ACTIONS = "alb.ingress.kubernetes.io/actions."


class EditError(ValueError):
    """A step cannot be written (a file or field it needs is missing)."""


@dataclass(frozen=True, slots=True)
class FieldRef:
    """Where a value lives: a file, the index of its document and the path inside it."""

    path: str
    doc: int
    at: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Traffic:
    path: str
    preset: str = "external-dns"
    kind: str = ""
    weight_field: str = ""
    cluster_field: str = ""


def _yaml() -> YAML:
    y = YAML(typ="rt", pure=True)
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def load_all(text: str) -> list[Any]:
    return [d for d in _yaml().load_all(text) if d is not None]


def dump_all(docs: Iterable[Any]) -> str:
    out = io.StringIO()
    _yaml().dump_all(list(docs), out)
    return out.getvalue()


def _get(data: Any, at: Iterable[str | int]) -> Any:
    for part in at:
        data = data[part]
    return data


def set_field(text: str, doc: int, at: tuple[str | int, ...], value: Any) -> str:
    """Return ``text`` with the value at ``at`` of document ``doc`` set to ``value``."""
    docs = load_all(text)
    try:
        parent = _get(docs[doc], at[:-1])
        old = parent[at[-1]]
    except (IndexError, KeyError, TypeError) as exc:
        raise EditError(f"no field {'.'.join(map(str, at))} in document {doc + 1}") from exc
    if isinstance(old, str) and not isinstance(value, str):
        value = str(value)
    parent[at[-1]] = type(old)(value) if hasattr(old, "style") else value
    return dump_all(docs)


def _split(dotted: str) -> tuple[str, ...]:
    return tuple(split_path(dotted)) if dotted else ()


def _routes_to(obj: Any, t: Traffic, cluster: str) -> bool:
    if not isinstance(obj, dict):
        return False
    if t.preset == "external-dns":
        ann = (obj.get("metadata") or {}).get("annotations") or {}
        return str(ann.get(EXTERNAL_DNS_ID, "")) == cluster
    if t.preset == "route53-recordset":
        return obj.get("kind") == "RecordSet" and str((obj.get("spec") or {}).get("setIdentifier")) == cluster
    if t.preset == "fields":
        if t.kind and obj.get("kind") != t.kind:
            return False
        try:
            return str(_get(obj, _split(t.cluster_field))) == cluster
        except (KeyError, IndexError, TypeError):
            return False
    return False


def _set_weight(obj: Any, t: Traffic, weight: int) -> None:
    if t.preset == "external-dns":
        obj["metadata"]["annotations"][EXTERNAL_DNS_WEIGHT] = str(weight)
    elif t.preset == "route53-recordset":
        obj["spec"]["weight"] = weight
    else:
        parts = _split(t.weight_field)
        _get(obj, parts[:-1])[parts[-1]] = weight


def _alb_weights(text: str, weights: Mapping[str, int]) -> tuple[str, int]:
    docs = load_all(text)
    touched = 0
    for obj in docs:
        ann = (obj.get("metadata") or {}).get("annotations") if isinstance(obj, dict) else None
        if not isinstance(ann, dict):
            continue
        for key in list(ann):
            if not str(key).startswith(ALB_ACTIONS):
                continue
            action = json.loads(str(ann[key]))
            for group in (action.get("forwardConfig") or {}).get("targetGroups") or []:
                name = " ".join(
                    str(group.get(k, "")) for k in ("serviceName", "targetGroupName", "targetGroupARN")
                )
                for cluster, weight in weights.items():
                    if name.endswith(cluster) or f"-{cluster}" in name:
                        group["weight"] = weight
                        touched += 1
            ann[key] = json.dumps(action, separators=(",", ":"))
    return dump_all(docs), touched


def set_weights(text: str, t: Traffic, weights: Mapping[str, int]) -> str:
    """Return ``text`` with each cluster's traffic weight set; :class:`EditError` if one has no entry."""
    if t.preset == "alb-target-group":
        out, touched = _alb_weights(text, weights)
        if touched < len(weights):
            raise EditError(f"{t.path}: no weighted target group for each of {', '.join(sorted(weights))}")
        return out
    docs = load_all(text)
    found = set()
    for obj in docs:
        for cluster, weight in weights.items():
            if _routes_to(obj, t, cluster):
                _set_weight(obj, t, weight)
                found.add(cluster)
    missing = sorted(set(weights) - found)
    if missing:
        raise EditError(f"{t.path}: no traffic entry routes to {', '.join(missing)}")
    return dump_all(docs)


def add_green_entries(text: str, t: Traffic, blue: str, green: str) -> str:
    """Return ``text`` with a copy of each of blue's traffic entries for green, at weight 0."""
    docs = load_all(text)
    if any(_routes_to(obj, t, green) for obj in docs):
        return dump_all(docs)
    copies = []
    for obj in docs:
        if _routes_to(obj, t, blue):
            copy = load_all(dump_all([obj]).replace(blue, green))[0]
            _set_weight(copy, t, 0)
            copies.append(copy)
    if not copies and t.preset != "alb-target-group":
        raise EditError(f"{t.path}: no traffic entry routes to {blue}")
    return dump_all([*docs, *copies])


def remove_entries(text: str, t: Traffic, cluster: str) -> str:
    """Return ``text`` without the traffic entries that route to ``cluster``."""
    docs = [obj for obj in load_all(text) if not _routes_to(obj, t, cluster)]
    return dump_all(docs) if docs else ""


ARGO_CLUSTER_LABEL = "argocd.argoproj.io/secret-type"


def _argo_cluster_name(obj: Any) -> str | None:
    """The cluster an Argo CD cluster Secret registers (``name`` in its data), or None."""
    if not isinstance(obj, dict) or obj.get("kind") != "Secret":
        return None
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if not isinstance(labels, dict) or labels.get(ARGO_CLUSTER_LABEL) != "cluster":
        return None
    plain = obj.get("stringData") if isinstance(obj.get("stringData"), dict) else {}
    name = plain.get("name") if plain else None
    if name is None and isinstance(obj.get("data"), dict) and obj["data"].get("name"):
        try:
            name = base64.b64decode(str(obj["data"]["name"])).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
    return str(name) if name is not None else None


def argo_cluster_secrets(text: str, cluster: str) -> bool:
    """Whether ``text`` holds an Argo CD cluster Secret registering ``cluster`` (plain ``stringData``)."""
    try:
        return any(_argo_cluster_name(obj) == cluster for obj in load_all(text))
    except YAMLError:  # not YAML this edit can read: not a registration it makes
        return False


def add_argo_cluster(text: str, blue: str, green: str) -> str:
    """``text`` with green registered with Argo CD beside blue: a copy of blue's cluster Secret,
    blue's name replaced (the Secret's name, its ``name``, labels and annotations), so the
    ApplicationSets' cluster generators give green the same add-ons and apps.

    Only a Secret whose ``server`` names blue (an address derived from the cluster's name) can
    be copied: the endpoint of an EKS cluster is only known once it exists, and a copy pointing at
    blue's would deploy "green's" applications onto blue. Such a Secret is an :class:`EditError`.
    """
    docs = load_all(text)
    if any(_argo_cluster_name(obj) == green for obj in docs):
        return text
    copies = []
    for obj in docs:
        if _argo_cluster_name(obj) != blue:
            continue
        plain = obj.get("stringData") if isinstance(obj.get("stringData"), dict) else None
        server = str((plain or {}).get("server") or "")
        if plain is None or (server and blue not in server):
            secret = (obj.get("metadata") or {}).get("name")
            raise EditError(
                f"blue's Argo CD cluster Secret {secret} gives its API endpoint ({server or 'in data'}), "
                "which green only has once it exists: register green with Argo CD when it is created "
                "(as kro or Terraform do), or name the endpoint after the cluster"
            )
        copies.append(load_all(dump_all([obj]).replace(blue, green))[0])
    return dump_all([*docs, *copies])


def remove_argo_cluster(text: str, cluster: str) -> str:
    """``text`` without the Argo CD cluster Secrets registering ``cluster``."""
    docs = [obj for obj in load_all(text) if _argo_cluster_name(obj) != cluster]
    return dump_all(docs) if docs else ""


def registry_add(config_text: str, blue: str, green: str) -> str:
    """Return the configuration with green's ``clusters:`` entry, a copy of blue's under green's name."""
    docs = load_all(config_text)
    entries = docs[0].get("clusters") if docs else None
    if not isinstance(entries, list) or any(isinstance(e, dict) and e.get("name") == green for e in entries):
        return config_text
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == blue:
            copy = load_all(dump_all([entry]).replace(blue, green))[0]
            entries.append(copy)
            return dump_all(docs)
    return config_text


def registry_remove(config_text: str, cluster: str) -> str:
    docs = load_all(config_text)
    entries = docs[0].get("clusters") if docs else None
    if not isinstance(entries, list):
        return config_text
    kept = [e for e in entries if not (isinstance(e, dict) and e.get("name") == cluster)]
    if len(kept) == len(entries):
        return config_text
    entries[:] = kept
    return dump_all(docs)


@dataclass(frozen=True, slots=True)
class Targets:
    """Where the campaign writes: the fields its steps change, per cluster request."""

    request_path: str
    control_plane: tuple[FieldRef, ...]
    nodegroups: tuple[FieldRef, ...] = ()
    addons: Mapping[str, FieldRef] | None = None
    addon_versions: Mapping[str, Mapping[str, str]] | None = None
    registry_path: str = ""
    traffic: tuple[Traffic, ...] = ()
    folder: str = ""  # the cluster's own folder (named after it), e.g. clusters/prod/prod-use1
    folder_files: tuple[str, ...] = ()  # the files in it besides the request (Flux sync, add-ons)
    argo_secrets: tuple[str, ...] = ()  # files outside that folder registering blue with Argo CD


def _set_all(files: dict[str, str], refs: Iterable[FieldRef], value: str) -> None:
    for ref in refs:
        text = files.get(ref.path)
        if text is None:
            raise EditError(f"{ref.path} is missing")
        files[ref.path] = set_field(text, ref.doc, ref.at, value)


def _set_addons(files: dict[str, str], where: Targets, version: str) -> None:
    """Set every add-on of ``where`` to the version its table gives for Kubernetes ``version``."""
    for name, ref in (where.addons or {}).items():
        wanted = ((where.addon_versions or {}).get(name) or {}).get(version)
        if wanted:
            _set_all(files, [ref], wanted)


def step_changes(
    c: Campaign, step: CampaignStep, where: Targets, files: Mapping[str, str]
) -> dict[str, str | None]:
    """Return the files the step writes (``None``: delete), from the branch tip's ``files``."""
    if step.kind == "hop":
        parts = step_parts(c, step, where, files)
        return dict(parts[-1][1]) if parts else {}
    out: dict[str, str] = dict(files)
    deleted: list[str] = []
    if step.kind == "control-plane":
        _set_all(out, where.control_plane, step.version)
    elif step.kind == "nodegroups":
        _set_all(out, where.nodegroups, step.version)
    elif step.kind == "addons":
        _set_addons(out, where, step.version)
    elif step.kind == "create-green":
        request = out.get(where.request_path)
        if request is None:
            raise EditError(f"{where.request_path} is missing")
        green_request = green_path(where.request_path, c.cluster, c.green)
        out[green_request] = request.replace(c.cluster, c.green)
        for path in where.folder_files:  # blue's own folder (a Flux cluster folder): green gets the same
            text = out.get(path)
            if text is not None:
                if argo_cluster_secrets(text, c.cluster):
                    add_argo_cluster(text, c.cluster, c.green)  # refuses a copy of blue's endpoint
                out[green_path(path, c.cluster, c.green)] = text.replace(c.cluster, c.green)
        _set_all(out, [FieldRef(green_request, r.doc, r.at) for r in where.control_plane], c.target)
        _set_all(
            out,
            [FieldRef(green_request, r.doc, r.at) for r in where.nodegroups if r.path == where.request_path],
            c.target,
        )
        for name, ref in (where.addons or {}).items():  # green starts on add-ons made for the target
            wanted = ((where.addon_versions or {}).get(name) or {}).get(c.target)
            if wanted and ref.path == where.request_path:
                _set_all(out, [FieldRef(green_request, ref.doc, ref.at)], wanted)
        if where.registry_path and where.registry_path in out:
            out[where.registry_path] = registry_add(out[where.registry_path], c.cluster, c.green)
        for path in where.argo_secrets:
            if path in out:
                out[path] = add_argo_cluster(out[path], c.cluster, c.green)
        for t in where.traffic:
            if t.path in out:
                out[t.path] = add_green_entries(out[t.path], t, c.cluster, c.green)
    elif step.kind == "traffic":
        weight = step.weight or 0
        for t in where.traffic:
            out[t.path] = set_weights(out[t.path], t, {c.green: weight, c.cluster: 100 - weight})
    elif step.kind == "decommission-workloads":
        for t in where.traffic:
            out[t.path] = remove_entries(out[t.path], t, c.cluster)
        deleted.extend(where.folder_files)  # what blue's folder runs on it; the request goes last
        for path in where.argo_secrets:  # Argo CD stops deploying to blue
            if path in out:
                out[path] = remove_argo_cluster(out[path], c.cluster)
                if not out[path]:
                    deleted.append(path)
        if where.registry_path and where.registry_path in out:
            out[where.registry_path] = registry_remove(out[where.registry_path], c.cluster)
    elif step.kind == "decommission-cluster":
        deleted.append(where.request_path)
    changes: dict[str, str | None] = {p: t for p, t in out.items() if files.get(p) != t}
    changes.update({p: None for p in deleted})
    return changes


def step_parts(
    c: Campaign, step: CampaignStep, where: Targets, files: Mapping[str, str]
) -> list[tuple[str, dict[str, str | None]]]:
    """The step's changes as ordered commits ``(subject, files so far)``; one unless the step is an
    in-place hop: the control plane, then the node groups, then the add-ons made for the version
    (parts that change nothing are left out)."""
    if step.kind != "hop":
        return [(step.title, step_changes(c, step, where, files))]
    out: dict[str, str] = dict(files)
    parts: list[tuple[str, dict[str, str | None]]] = []
    seen: dict[str, str | None] = {}

    def cut(subject: str) -> None:
        now: dict[str, str | None] = {p: t for p, t in out.items() if files.get(p) != t}
        if now != seen:
            parts.append((subject, now))
            seen.clear()
            seen.update(now)

    _set_all(out, where.control_plane, step.version)
    cut(f"Control plane to {step.version}")
    _set_all(out, where.nodegroups, step.version)
    cut(f"Node groups to {step.version}")
    _set_addons(out, where, step.version)
    cut(f"Add-ons for {step.version}")
    return parts


def rollback_changes(
    c: Campaign, where: Targets, files: Mapping[str, str], weight: int
) -> dict[str, str | None]:
    """Return the traffic files with green back at ``weight`` (the last good one) and blue the rest."""
    out: dict[str, str | None] = {}
    for t in where.traffic:
        new = set_weights(files[t.path], t, {c.green: weight, c.cluster: 100 - weight})
        if new != files[t.path]:
            out[t.path] = new
    return out
