"""Gather an upgrade plan's facts from a repository revision (the adapter around the pure planner).

Reads the configuration, every YAML file and the rendered objects of the cluster's targets at
one revision, and turns them into :class:`~bot.domain.upgrades.plan.ClusterFacts`: the cluster
request (file and line of its version), its node groups and EKS add-ons, and each rendered
object with the file and line that defines it (the object's own document when the repository
has it, otherwise the target that renders it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.domain.config import CONFIG_PATH, ConfigError, parse_config
from bot.domain.render import fastyaml
from bot.domain.upgrades.plan import AddonFact, ClusterFacts, NodeGroupFact, ObjectFact
from bot.domain.validate.base import Doc, TreeReader, as_dict, iter_yaml_files, parse_docs
from bot.domain.validate.eks import parse_minor
from bot.domain.validate.fleet import ClusterRequest, requests_in
from bot.domain.yamlio import YamlError
from bot.git.files import GitError, read_file_at, rev_parse
from bot.git.mirror import materialise
from bot.report import UsageError, resolve_git_dir

EKS_ADDON_GROUPS = ("eks.aws.crossplane.io", "eks.services.k8s.aws")


@dataclass(slots=True)
class Fleet:
    """Every cluster request of a revision, by name, with the docs they were read from."""

    sha: str
    config: dict[str, Any]
    clusters: dict[str, ClusterFacts]
    docs: list[Doc]


def _registry(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(c.get("name")): c for c in config.get("clusters") or [] if isinstance(c, dict)}


def _addon(doc: Doc) -> tuple[str, AddonFact] | None:
    if doc.kind != "Addon" or doc.group not in EKS_ADDON_GROUPS or not isinstance(doc.data, dict):
        return None
    spec = as_dict(doc.data.get("spec"))
    crossplane = doc.group == "eks.aws.crossplane.io"
    fp = as_dict(spec.get("forProvider", spec)) if crossplane else spec
    name, version, cluster = (
        fp.get("addonName") or spec.get("name"),
        fp.get("addonVersion"),
        fp.get("clusterName"),
    )
    if not (name and version):
        return None
    at = ["spec", "forProvider", "addonVersion"] if crossplane else ["spec", "addonVersion"]
    return str(cluster or ""), AddonFact(str(name), str(version), doc.path, doc.line_at(at))


def _cluster_of(req: ClusterRequest, names: set[str]) -> str | None:
    cluster = req.value("cluster_name")
    if cluster and str(cluster) in names:
        return str(cluster)
    return next(iter(names)) if len(names) == 1 else None


def fleet_facts(docs: Iterable[Doc], config: dict[str, Any], sha: str = "") -> Fleet:
    """Return the clusters that ``docs`` request (without rendered objects)."""
    docs = list(docs)
    registry = _registry(config)
    requests = requests_in(docs, config)
    clusters: dict[str, ClusterFacts] = {}
    for req in requests:
        name, version = req.name, parse_minor(req.value("version"))
        if req.role != "cluster" or not name or version is None or name in clusters:
            continue
        entry = registry.get(name, {})
        clusters[name] = ClusterFacts(
            name=name,
            env=str(req.environment or entry.get("env") or "-"),
            region=str(req.value("region") or entry.get("region") or ""),
            version=version,
            path=req.doc.path,
            line=req.doc.line_at(req.at("version")),
            folder=str(entry.get("path") or os.path.dirname(req.doc.path)),
            registry_path=CONFIG_PATH if name in registry else "",
        )
    names = set(clusters)
    nodegroups: dict[str, list[NodeGroupFact]] = {n: [] for n in names}
    for req in requests:
        if req.role != "nodegroup" or not req.name:
            continue
        owner = _cluster_of(req, names)
        if owner is not None:
            nodegroups[owner].append(
                NodeGroupFact(
                    req.name,
                    parse_minor(req.value("version")),
                    req.doc.path,
                    req.doc.line_at(req.at("version")),
                )
            )
    addons: dict[str, list[AddonFact]] = {n: [] for n in names}
    for doc in docs:
        found = _addon(doc)
        if found is None:
            continue
        owner = found[0] if found[0] in names else (next(iter(names)) if len(names) == 1 else None)
        if owner is not None:
            addons[owner].append(found[1])
    for name, facts in list(clusters.items()):
        clusters[name] = replace(facts, nodegroups=tuple(nodegroups[name]), addons=tuple(addons[name]))
    return Fleet(sha, config, clusters, docs)


def read_docs(tree: Path) -> list[Doc]:
    """Parse every YAML file of ``tree``; unparsable files are skipped (``check`` reports them).

    Files are read with libyaml (:mod:`~bot.domain.render.fastyaml`), which knows where each
    document starts but not each field: :func:`load_cluster` reads the cluster's own files
    again with the round-trip reader, whose documents know the line of every field.
    """
    reader = TreeReader(tree)
    out: list[Doc] = []
    for rel in iter_yaml_files(tree):
        text = reader.read(rel)
        if text is None:
            continue
        try:
            loaded = fastyaml.load_docs(text, rel)
        except YamlError:
            continue
        out.extend(Doc(rel, i, line, data, data) for i, (line, data) in enumerate(loaded))
    return out


def _object_index(docs: Iterable[Doc]) -> dict[tuple[str, str, str], tuple[str, int]]:
    index: dict[tuple[str, str, str], tuple[str, int]] = {}
    for doc in docs:
        if doc.kind and doc.name:
            index.setdefault((doc.api_version, doc.kind, doc.name), (doc.path, doc.line))
    return index


def rendered_objects(tree: Path, fleet: Fleet, cluster: str, secret_key: bytes) -> tuple[ObjectFact, ...]:
    """Return the objects the cluster's targets render, each with the file and line behind it."""
    from bot.domain.render import discover, render_tree

    targets = [
        t.name for t in discover(tree, fleet.config, secret_key=secret_key).targets if t.cluster == cluster
    ]
    if not targets:
        return ()
    rendered, _ = render_tree(tree, fleet.config, secret_key=secret_key, only=targets)
    index = _object_index(fleet.docs)
    out: dict[tuple[str, str, str], ObjectFact] = {}
    for target, objects in rendered:
        for obj in objects:
            api, kind = str(obj.get("apiVersion") or ""), str(obj.get("kind") or "")
            meta = as_dict(obj.get("metadata"))
            name = str(meta.get("name") or "")
            path, line = index.get((api, kind, name), (target.path, target.line))
            out.setdefault((api, kind, name), ObjectFact(api, kind, name, path, line))
    return tuple(out.values())


def load_cluster(repo: Path, ref: str, cluster: str, *, secret_key: bytes) -> tuple[ClusterFacts, Fleet]:
    """Return the facts of ``cluster`` at ``ref``; :class:`UsageError` when it is not in the fleet."""
    git_dir = resolve_git_dir(repo)
    try:
        sha = rev_parse(git_dir, ref)
    except GitError as exc:
        raise UsageError(f"unknown revision: {exc}") from exc
    try:
        config = parse_config(read_file_at(git_dir, sha, CONFIG_PATH))
    except ConfigError:
        config = {"version": 1}
    with materialise(git_dir, sha) as tree:
        fleet = fleet_facts(read_docs(tree), config, sha)
        facts = fleet.clusters.get(cluster)
        if facts is None:
            known = ", ".join(sorted(fleet.clusters)) or "none"
            raise UsageError(f"no cluster request named {cluster!r} at {ref} (clusters: {known})")
        # Read the cluster's own files again, with the line of every field.
        own = {facts.path, *(n.path for n in facts.nodegroups), *(a.path for a in facts.addons)}
        reader = TreeReader(tree)
        precise = [d for rel in sorted(own) for d in parse_docs(reader.read(rel) or "", rel)[0]]
        fleet = fleet_facts([*(d for d in fleet.docs if d.path not in own), *precise], config, sha)
        facts = fleet.clusters[cluster]
        facts = replace(facts, objects=rendered_objects(tree, fleet, cluster, secret_key))
    return facts, fleet
