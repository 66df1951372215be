"""Gather an upgrade plan's facts from a repository revision (the adapter around the pure planner).

Reads the configuration, every YAML file and the rendered objects of the cluster's targets at
one revision, and turns them into :class:`~bot.domain.upgrades.plan.ClusterFacts`: the cluster
request (file and line of its version), its node groups and EKS add-ons, and each rendered
object with the file and line that defines it (the object's own document when the repository
has it, otherwise the target that renders it).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from bot.aws.eks import upgrade_addon_table
from bot.domain.config import CONFIG_PATH, ConfigError, parse_config
from bot.domain.model import Finding, Severity
from bot.domain.render import fastyaml
from bot.domain.upgrades.edits import FieldRef, Targets, Traffic
from bot.domain.upgrades.plan import (
    AddonFact,
    ClusterFacts,
    NodeGroupFact,
    ObjectFact,
    Strategy,
    UpgradePlan,
    UpgradeSettings,
    plan_upgrade,
)
from bot.domain.upgrades.tables import ADDON_VERSIONS, REMOVALS_BY_KEY
from bot.domain.validate.base import Doc, TreeReader, as_dict, iter_yaml_files, parse_docs
from bot.domain.validate.eks import EksCatalog, format_minor, parse_minor
from bot.domain.validate.fleet import (
    ACK_EKS_GROUP,
    ClusterRequest,
    eks_addon,
    in_scope,
    kind_mappings,
    requests_in,
)
from bot.domain.yamlio import YamlError
from bot.git.files import GIT_ENV, GitError, git, read_file_at, rev_parse
from bot.git.mirror import materialise
from bot.prchecks.build import UsageError, resolve_git_dir


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
    addon = eks_addon(doc.group, doc.kind, doc.data)
    if addon is None:
        return None
    fact = AddonFact(
        addon.name, addon.version, doc.path, doc.line_at(list(addon.at)), doc.group == ACK_EKS_GROUP
    )
    return addon.cluster, fact


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
                    req.doc.group == ACK_EKS_GROUP,
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


def _kind_pattern(config: dict[str, Any]) -> re.Pattern[str]:
    kinds = {str(m.get("kind")) for m in kind_mappings(config) if m.get("kind")} | {"Addon"}
    alternatives = "|".join(sorted(re.escape(k) for k in kinds))
    return re.compile(rf"^\s*kind:\s*[\"']?(?:{alternatives})[\"']?\s*(?:#.*)?$", re.M)


def read_docs(tree: Path, config: dict[str, Any]) -> list[Doc]:
    """Parse the YAML files of ``tree`` that can hold a cluster request, node group or add-on.

    Only files in ``cluster_requests.paths`` whose text names one of those kinds are parsed, with
    libyaml (:mod:`~bot.domain.render.fastyaml`), which knows where each document starts but not
    each field: :func:`load_cluster` reads the cluster's own files again with the round-trip
    reader, whose documents know the line of every field. Unparsable files are skipped
    (``check`` reports them).
    """
    reader = TreeReader(tree)
    wanted = _kind_pattern(config)
    out: list[Doc] = []
    for rel in iter_yaml_files(tree):
        if not in_scope(rel, config):
            continue
        text = reader.read(rel)
        if text is None or not wanted.search(text):
            continue
        try:
            loaded = fastyaml.load_docs(text, rel)
        except YamlError:
            continue
        out.extend(Doc(rel, i, line, data, data) for i, (line, data) in enumerate(loaded))
    return out


def _name_of(obj: Any) -> str:
    return str(as_dict(as_dict(obj).get("metadata")).get("name") or "")


def _locate(tree: Path, wanted: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], tuple[str, int]]:
    """Return the file and line that define each (apiVersion, kind, name) in ``wanted``, when one does."""
    found: dict[tuple[str, str, str], tuple[str, int]] = {}
    if not wanted:
        return found
    reader = TreeReader(tree)
    apis = {api for api, _, _ in wanted}
    for rel in iter_yaml_files(tree):
        text = reader.read(rel)
        if text is None or not any(api in text for api in apis):
            continue
        try:
            loaded = fastyaml.load_docs(text, rel)
        except YamlError:
            continue
        for line, data in loaded:
            key = (
                str(as_dict(data).get("apiVersion") or ""),
                str(as_dict(data).get("kind") or ""),
                _name_of(data),
            )
            if key in wanted:
                found.setdefault(key, (rel, line))
    return found


def _objects(
    tree: Path, fleet: Fleet, disc: Any, targets: list[str], secret_key: bytes
) -> tuple[ObjectFact, ...]:
    from bot.render_runtime.engine import render_tree

    if not targets:
        return ()
    rendered, _ = render_tree(tree, fleet.config, secret_key=secret_key, only=targets, discovery=disc)
    seen: dict[tuple[str, str, str], tuple[str, int]] = {}
    for target, objects in rendered:
        for obj in objects:
            key = (str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""), _name_of(obj))
            seen.setdefault(key, (target.path, target.line))
    located = _locate(tree, {k for k in seen if (k[0], k[1]) in REMOVALS_BY_KEY})
    return tuple(ObjectFact(*key, *located.get(key, where)) for key, where in seen.items())


def rendered_objects(tree: Path, fleet: Fleet, cluster: str, secret_key: bytes) -> tuple[ObjectFact, ...]:
    """Return the objects the cluster's targets render.

    Objects of an API some Kubernetes release removes carry the file and line of the document
    that defines them (or of the target that renders them, when no document does); the others
    carry their target's.
    """
    disc = _discover(tree, fleet.config, secret_key)
    targets = [t.name for t in disc.targets if t.cluster == cluster]
    return _objects(tree, fleet, disc, targets, secret_key)


def _discover(tree: Path, config: dict[str, Any], secret_key: bytes) -> Any:
    from bot.domain.render import discover
    from bot.render_runtime.gotemplate_runner import default_runner

    return discover(tree, config, secret_key=secret_key, go_engine=default_runner())


def _precise(tree: Path, fleet: Fleet, facts: ClusterFacts) -> Fleet:
    """The fleet with the cluster's own files read again, with the line of every field."""
    own = {facts.path, *(n.path for n in facts.nodegroups), *(a.path for a in facts.addons)}
    reader = TreeReader(tree)
    precise = [d for rel in sorted(own) for d in parse_docs(reader.read(rel) or "", rel)[0]]
    return fleet_facts([*(d for d in fleet.docs if d.path not in own), *precise], fleet.config, fleet.sha)


def _mentions(git_dir: Path, sha: str, name: str, limit: int = 3) -> list[str]:
    """``path:line`` of the first YAML lines naming ``name`` as a word (to say where a user's cluster is)."""
    out = git(git_dir, "grep", "-n", "-w", "-F", "-I", name, sha, "--", "*.yaml", "*.yml", check=False)
    found = []
    for line in out.decode("utf-8", errors="replace").splitlines():
        parts = line.split(":", 3)  # sha:path:line:text
        if len(parts) == 4:
            found.append(f"{parts[1]}:{parts[2]}")
    return found[:limit]


def _revision(repo: Path, ref: str) -> tuple[Path, str, dict[str, Any]]:
    git_dir = resolve_git_dir(repo)
    try:
        sha = rev_parse(git_dir, ref)
    except GitError as exc:
        raise UsageError(f"unknown revision: {exc}") from exc
    try:
        config = parse_config(read_file_at(git_dir, sha, CONFIG_PATH))
    except ConfigError:
        config = {"version": 1}
    return git_dir, sha, config


def own_folder_files(
    git_dir: Path, sha: str, folder: str, cluster: str, request_path: str
) -> tuple[str, ...]:
    """The UTF-8 text files of the cluster's own folder at ``sha`` besides its request: a folder
    named after the cluster (Flux's ``clusters/<name>/``); a shared folder is nobody's own."""
    folder = folder.rstrip("/")
    if not folder or os.path.basename(folder) != cluster:
        return ()
    # one call: the folder's non-empty text files (git's own binary test), as paths from the root
    out = git(git_dir, "grep", "-I", "-l", "-z", "-e", "", sha, "--", f"{folder}/", check=False)
    names = out.decode("utf-8", errors="replace").split("\0")
    paths = sorted({n.split(":", 1)[1] for n in names if ":" in n} - {request_path})
    return tuple(paths)


def load_cluster(
    repo: Path, ref: str, cluster: str, *, secret_key: bytes, fast: bool = False
) -> tuple[ClusterFacts, Fleet]:
    """Return the facts of ``cluster`` at ``ref``; :class:`UsageError` when it is not in the fleet.

    With ``fast``, :func:`load_cluster_fast` is tried first (the returned fleet then holds only
    what it read: use it for its configuration, not for the other clusters).
    """
    git_dir, sha, config = _revision(repo, ref)
    facts, fleet = _load_cluster(git_dir, sha, config, ref, cluster, secret_key=secret_key, fast=fast)
    own = own_folder_files(git_dir, sha, facts.folder, cluster, facts.path)
    return replace(facts, folder_files=own), fleet


def _load_cluster(
    git_dir: Path, sha: str, config: dict[str, Any], ref: str, cluster: str, *, secret_key: bytes, fast: bool
) -> tuple[ClusterFacts, Fleet]:
    if fast:
        found = _load_fast(git_dir, sha, config, cluster, secret_key)
        if found is not None:
            return found
    with materialise(git_dir, sha) as tree:
        fleet = fleet_facts(read_docs(tree, config), config, sha)
        facts = fleet.clusters.get(cluster)
        if facts is None:
            names = sorted(fleet.clusters)
            known = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            known = known or "none"
            seen = _mentions(git_dir, sha, cluster)
            where = (
                f"; {cluster!r} appears in {', '.join(seen)}, which holds no cluster request object "
                "(the planner reads EKS cluster requests: ACK, Crossplane or kro objects, or kinds mapped "
                "under `cluster_requests` in .github/gitops-bot.yml; clusters listed in a Helm values file "
                "are not read)"
                if seen
                else ""
            )
            raise UsageError(f"no cluster request named {cluster!r} at {ref} (clusters: {known}){where}")
        fleet = _precise(tree, fleet, facts)
        facts = replace(fleet.clusters[cluster], objects=rendered_objects(tree, fleet, cluster, secret_key))
    return facts, fleet


# ----------------------------------------------------------------- the fast path of one cluster
# On a fleet of hundreds of clusters, reading and discovering every cluster's folder is most of
# a plan's time, though the plan needs one cluster. The fast path leaves out the folders that
# the registry gives the other clusters, when it can tell that nothing there changes this
# cluster's plan; otherwise (or when in doubt) the caller takes the full path.

#: Text that, in another cluster's folder, could change this cluster's plan: Argo CD objects (an
#: ApplicationSet's generators, cluster secrets, destinations by server) and Flux sources (found
#: by name anywhere in the tree).
_FOREIGN_MARKERS = ("argoproj.io", "source.toolkit.fluxcd.io")


def _clean(path: str) -> bool:
    return bool(path) and all(part not in ("", ".", "..") for part in path.split("/"))


def fast_folders(
    git_dir: Path, sha: str, config: dict[str, Any], cluster: str
) -> tuple[str, list[str]] | None:
    """``(the cluster's folder, the other clusters' folders to leave out)``, or None when the fast path
    cannot be sure to give the full path's plan.

    It needs the cluster's registry entry with a folder, other clusters' folders that neither
    hold nor sit in it, no symbolic link in the tree, and a text search at ``sha`` that finds, in
    the left-out folders, neither the cluster's name nor its folder's, nor Argo CD or Flux source
    objects, nor an API some Kubernetes release removes (whose defining file the plan names), and,
    in the YAML of the files kept (the configuration aside), no left-out folder's name (a
    reference kustomize or Flux would follow there).
    """
    own: set[str] = set()
    others: set[str] = set()
    for entry in config.get("clusters") or []:
        if isinstance(entry, dict) and entry.get("name"):
            path = str(entry.get("path") or "").strip("/")
            (own if str(entry["name"]) == cluster else others).add(path)
    if len(own) != 1 or not _clean(folder := next(iter(own))):
        return None
    excluded = sorted(
        p
        for p in others
        if _clean(p) and p != folder and not p.startswith(folder + "/") and not folder.startswith(p + "/")
    )
    if not excluded:
        return None
    try:
        listing = git(git_dir, "ls-tree", "-r", "-z", "--full-tree", sha)
        if any(entry.startswith(b"120000 ") for entry in listing.split(b"\0")):
            return None
        apis = sorted({api for api, _ in REMOVALS_BY_KEY})
        words = [cluster, folder.rsplit("/", 1)[-1], *_FOREIGN_MARKERS, *apis]
        if _grep(git_dir, sha, words, excluded):
            return None
        names = sorted({p.rsplit("/", 1)[-1] for p in excluded})
        kept = ["*.yaml", "*.yml", "*Kustomization", f":(exclude){CONFIG_PATH}"]
        if _grep(git_dir, sha, names, [*kept, *(f":(exclude){p}/" for p in excluded)]):
            return None
    except GitError:
        return None
    return folder, excluded


def _grep(git_dir: Path, sha: str, words: list[str], pathspecs: list[str]) -> bool:
    """Whether a file of ``sha`` within ``pathspecs`` holds one of ``words`` (fixed strings)."""
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", "grep", "-q", "-F", "-f", "-", sha, "--", *pathspecs],
        input="\n".join(words).encode(),
        capture_output=True,
        env=GIT_ENV,
        check=False,
    )
    if proc.returncode > 1:
        raise GitError(f"git grep failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.returncode == 0


def _borrowed_owner(fleet: Fleet) -> bool:
    """Whether a node group or add-on would go to the only cluster read for want of a named one
    (with the left-out clusters there, it would not)."""
    if len(fleet.clusters) != 1:
        return False
    names = set(fleet.clusters)
    for req in requests_in(fleet.docs, fleet.config):
        if req.role == "nodegroup" and req.name and str(req.value("cluster_name") or "") not in names:
            return True
    return any((found := _addon(doc)) is not None and found[0] not in names for doc in fleet.docs)


def _load_fast(
    git_dir: Path, sha: str, config: dict[str, Any], cluster: str, secret_key: bytes
) -> tuple[ClusterFacts, Fleet] | None:
    """The cluster's facts read without the other clusters' folders (see :func:`fast_folders`),
    or None when the full path must answer."""
    found = fast_folders(git_dir, sha, config, cluster)
    if found is None:
        return None
    folder, excluded = found
    inside = folder + "/"
    with materialise(git_dir, sha, exclude=excluded) as tree:
        fleet = fleet_facts(read_docs(tree, config), config, sha)
        facts = fleet.clusters.get(cluster)
        if facts is None or _borrowed_owner(fleet):
            return None
        fleet = _precise(tree, fleet, facts)
        disc = _discover(tree, config, secret_key)
        mine = [t for t in disc.targets if t.cluster == cluster]
        # Only targets defined in the cluster's folder, with their variables from there: what
        # the registry gives this cluster whatever the other folders hold.
        if any(
            not t.source.startswith(inside) or any(not v.startswith(inside) for v in t.var_sources)
            for t in mine
        ):
            return None
        if any(f.rule == "render.substitute-from" and f.path.startswith(inside) for f in disc.findings):
            return None
        objects = _objects(tree, fleet, disc, [t.name for t in mine], secret_key)
    return replace(fleet.clusters[cluster], objects=objects), fleet


def _addon_ref(doc: Doc) -> tuple[str, str, FieldRef] | None:
    """``(cluster, add-on name, where its version is)`` of an EKS add-on document."""
    addon = eks_addon(doc.group, doc.kind, doc.data)
    return None if addon is None else (addon.cluster, addon.name, FieldRef(doc.path, doc.index, addon.at))


def step_targets(fleet: Fleet, cluster: str, policy: Mapping[str, Any] | None = None) -> Targets:
    """Where a campaign's steps write for ``cluster``: request version, node groups, add-ons, traffic.

    The objects are found in ``fleet`` (the branch the step edits); which traffic objects a step
    moves is ``policy``'s ``upgrades.blue_green.traffic`` (the campaign's configuration, read from
    the default branch like every other campaign decision; ``fleet``'s own when not given).
    """
    names = set(fleet.clusters)
    requests = requests_in(fleet.docs, fleet.config)
    control: list[FieldRef] = []
    nodegroups: list[FieldRef] = []
    request_path = fleet.clusters[cluster].path if cluster in fleet.clusters else ""
    for req in requests:
        at = tuple(req.at("version"))
        if not at or req.value("version") is None:
            continue
        ref = FieldRef(req.doc.path, req.doc.index, at)
        if req.role == "cluster" and req.name == cluster:
            control.append(ref)
        elif req.role == "nodegroup" and _cluster_of(req, names) == cluster:
            nodegroups.append(ref)
    addons: dict[str, FieldRef] = {}
    for doc in fleet.docs:
        found = _addon_ref(doc)
        if found is not None and (found[0] == cluster or (not found[0] and len(names) == 1)):
            addons[found[1]] = found[2]
    config = fleet.config if policy is None else policy
    section = config.get("upgrades") if isinstance(config.get("upgrades"), dict) else {}
    bg = (section or {}).get("blue_green") or {}
    traffic = tuple(
        Traffic(
            path=str(t["path"]),
            preset=str(t.get("preset") or "external-dns"),
            kind=str(t.get("kind") or ""),
            weight_field=str(t.get("weight_field") or ""),
            cluster_field=str(t.get("cluster_field") or ""),
        )
        for t in (bg.get("traffic") or [])
        if isinstance(t, dict) and t.get("path")
    )
    return Targets(
        folder=fleet.clusters[cluster].folder if cluster in fleet.clusters else "",  # see own_folder_files
        request_path=request_path,
        control_plane=tuple(control),
        nodegroups=tuple(nodegroups),
        addons=addons,
        addon_versions=ADDON_VERSIONS,
        registry_path=fleet.clusters[cluster].registry_path if cluster in fleet.clusters else "",
        traffic=traffic,
    )


def fleet_at(git_dir: Path, sha: str) -> Fleet:
    """Every cluster request at ``sha`` of a (bare) repository, read fast (what the calendar scan reads).

    The documents' indices count non-empty documents, as :func:`~bot.domain.upgrades.edits.load_all`
    does, so a step's :class:`~bot.domain.upgrades.edits.FieldRef` finds the same document.
    """
    try:
        config = parse_config(read_file_at(git_dir, sha, CONFIG_PATH) or "")
    except ConfigError:
        config = {"version": 1}
    with materialise(git_dir, sha) as tree:
        return fleet_facts(read_docs(tree, config), config, sha)


def plan_cluster(
    facts: ClusterFacts,
    catalog: EksCatalog,
    today: date,
    *,
    to: tuple[int, int] | None,
    strategy: Strategy,
    settings: UpgradeSettings,
    aws: Any = None,
) -> UpgradePlan:
    """The upgrade plan of ``facts``; with ``aws`` (a boto3 session or EKS client), the add-on
    versions for each hop are the ones EKS installs by default (``describe_addon_versions``), the
    bundled table filling in what AWS does not say, and a notice when AWS did not answer."""
    plan = plan_upgrade(facts, catalog, today, to=to, strategy=strategy, settings=settings)
    names = sorted({a.name for a in facts.addons})
    versions = [format_minor(h) for h in plan.hops]
    if aws is not None and names and versions:
        table, why = upgrade_addon_table(aws, versions, names, ADDON_VERSIONS)
        plan = plan_upgrade(
            facts, catalog, today, to=to, strategy=strategy, settings=settings, addon_table=table
        )
        if why is None:
            plan.addon_source = "AWS (describe_addon_versions)"
        else:
            plan.findings.append(
                Finding(
                    "upgrade.addons-bundled",
                    Severity.NOTICE,
                    facts.path,
                    facts.line,
                    f"add-on versions come from the bundled table: AWS did not answer ({why})",
                    "Give the bot eks:DescribeAddonVersions (credentials from the usual boto3 chain).",
                )
            )
    else:
        table = ADDON_VERSIONS
    plan.addon_table = {n: {v: table[n][v] for v in versions if v in table.get(n, {})} for n in names}
    return plan
