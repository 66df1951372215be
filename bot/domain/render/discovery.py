"""Find what a repository deploys: Flux Kustomizations, Argo CD Applications and
ApplicationSets, and plain kustomization roots, each bound to a cluster and environment.

Cluster and environment come, in this order, from the ``clusters:`` registry of the repo
config (an entry whose ``path`` holds the defining file), from Argo CD cluster secrets
(labels ``env``/``environment``), from Flux variables (``cluster_name``, ``env``, ...), and
last from the path (a segment named like a known environment). Unknown is ``-``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import posixpath
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.domain.diff import secret_token
from bot.domain.model import Finding, Severity
from bot.domain.render.argocd import (
    LOCAL_SERVER,
    AppSetContext,
    ClusterInfo,
    GeneratorError,
    cluster_from_secret,
    expand_appset,
)
from bot.domain.render.fastyaml import load_docs_shared
from bot.domain.render.gotemplate import GoEngine, TemplateError, TemplateUnavailable
from bot.domain.render.helm import CHART_FILE, RemoteChart, Skip, argo_helm
from bot.domain.render.kustomize import (
    KUSTOMIZATION_FILES,
    KustomizationScanner,
    kustomization_patch_refs,
    resolve_ref,
)
from bot.domain.render.overlay import needs_build_spec, options_json
from bot.domain.render.result import Target
from bot.domain.yamlio import YamlError

FLUX_KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io/"
ARGO_GROUP = "argoproj.io/"
CLUSTER_SECRET_LABEL = "argocd.argoproj.io/secret-type"
DEFAULT_ENVS = ("dev", "development", "test", "qa", "staging", "stage", "preprod", "prod", "production")
CLUSTER_VARS = ("cluster_name", "CLUSTER_NAME", "cluster", "CLUSTER")
ENV_VARS = ("env", "ENV", "environment", "ENVIRONMENT", "cluster_env", "CLUSTER_ENV")
_MARKERS = (
    "kustomize.toolkit.fluxcd.io",
    "source.toolkit.fluxcd.io",  # GitRepository, OCIRepository, Bucket: where a Kustomization reads
    "source.extensions.fluxcd.io",  # ArtifactGenerator
    "argoproj.io",
    "kind: ConfigMap",
    "kind: Secret",
)
_SKIP_DIRS = {".git", ".github", "node_modules"}


@dataclass(slots=True)
class _Doc:
    path: str
    line: int
    data: dict[str, Any]


@dataclass(slots=True)
class Discovery:
    """Targets of one tree, the problems met while finding them, and the kustomize scanner."""

    targets: list[Target] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    scanner: KustomizationScanner | None = None
    reads_other_files: bool = True
    """True when the targets may depend on more than :func:`same_discovery` looks at: an
    ApplicationSet git generator (it reads any file or folder) or a symbolic link in the tree.
    ``compute_diff`` then always discovers the head tree too."""
    git_files: tuple[str, ...] | None = None
    """The file globs ApplicationSet git generators read (``files[].path``); None when unknown
    (a symbolic link, a generator whose path is not a string). A change to a file they do not
    match (a modification, nothing added or removed) leaves the generated Applications alone."""


@dataclass(frozen=True, slots=True)
class _Registered:
    info: ClusterInfo
    env: str
    path: str


def _registry(config: dict[str, Any]) -> list[_Registered]:
    out = []
    for entry in config.get("clusters") or []:
        if not isinstance(entry, dict) or not entry.get("name"):
            continue
        labels = {str(k): str(v) for k, v in (entry.get("labels") or {}).items()}
        env = str(entry.get("env") or labels.get("env") or "-")
        labels.setdefault("env", env)
        if entry.get("region"):
            labels.setdefault("region", str(entry["region"]))
        server = str(entry.get("server") or f"https://{entry['name']}.cluster.invalid")
        info = ClusterInfo(
            name=str(entry["name"]),
            server=server,
            project=str(entry.get("project") or ""),
            labels=labels,
            annotations={str(k): str(v) for k, v in (entry.get("annotations") or {}).items()},
        )
        out.append(_Registered(info, env, str(entry.get("path") or "").strip("/")))
    return out


def norm_url(url: str) -> str:
    """Normalise a Git URL so the HTTPS, SSH and scp-like spellings of one repository compare equal."""
    u = url.strip().lower()
    for scheme in ("https://", "http://", "ssh://", "git://", "git+ssh://"):
        if u.startswith(scheme):
            u = u[len(scheme) :]
            break
    host, _, rest = u.partition("/")
    if "@" in host:
        host = host.rsplit("@", 1)[1]
    if ":" in host and not host.rsplit(":", 1)[1].isdigit():  # git@github.com:org/repo
        host = host.replace(":", "/", 1)
    elif ":" in host:
        host = host.rsplit(":", 1)[0]
    u = f"{host}/{rest}" if rest else host
    return u.rstrip("/").removesuffix(".git")


def _mapping(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def _scan(tree: Path) -> tuple[list[tuple[str, bool]], bool]:
    """List the files discovery looks at, in :func:`os.walk` order, and tell whether the tree has links.

    Files are (repo-relative path, is a symbolic link), top-down with sorted names, skipping
    ``.git``, ``.github``, ``node_modules`` and hidden folders, never following a linked
    folder. The second value is True when any entry of the whole tree (skipped folders
    included) is a symbolic link. One :func:`os.scandir` per folder: no stat per file.
    """
    files: list[tuple[str, bool]] = []
    has_links = False

    def visit(folder: str, rel_root: str, listed: bool) -> None:
        nonlocal has_links
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            return
        dirs: list[str] = []
        names: list[tuple[str, bool]] = []
        for entry in entries:
            link = entry.is_symlink()
            has_links = has_links or link
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if not is_dir:
                names.append((entry.name, link))
            elif not link:
                dirs.append(entry.name)
        if listed:
            names.sort()
            files.extend((name if not rel_root else f"{rel_root}/{name}", link) for name, link in names)
        # a Helm chart's templates are not manifests (its folder is rendered by Helm, not read)
        chart = listed and any(name == CHART_FILE for name, _link in names)
        for name in sorted(dirs):
            sub_listed = listed and name not in _SKIP_DIRS and not name.startswith(".")
            sub_listed = sub_listed and not (chart and name in ("templates", "charts"))
            visit(os.path.join(folder, name), name if not rel_root else f"{rel_root}/{name}", sub_listed)

    visit(str(tree), "", True)
    return files, has_links


class _Finder:
    def __init__(
        self, tree: Path, config: dict[str, Any], secret_key: bytes, go_engine: GoEngine | None = None
    ) -> None:
        self.tree = tree
        self.go_engine = go_engine
        self.config = config
        self.render_cfg: dict[str, Any] = dict(config.get("render") or {})
        self.secret_key = secret_key
        self.registry = _registry(config)
        self._by_path = {r.path: r for r in reversed(self.registry) if r.path}
        self.findings: list[Finding] = []
        self.docs: list[_Doc] = []
        self.files: list[str] = []
        self.kustomization_dirs: list[str] = []
        self.has_links = True
        self.reads_tree = False
        self.git_files: list[str] | None = []
        """The file globs ApplicationSet git generators read (None: some cannot be told)."""
        self._index: dict[tuple[str, str, str, str], list[_Doc]] | None = None
        self._sources: dict[tuple[str, str], list[dict[str, Any]]] | None = None
        self._dirs: dict[str, bool] = {}
        self.reach: dict[str, list[tuple[str, str]]] = {}
        """File -> the (cluster, env) whose Flux sync reaches it (see :meth:`flux_reach`)."""
        self.self_sources: set[tuple[str, str]] = set()
        self._argo: tuple[set[str], set[str]] | None = None
        self._files_cache: set[str] | None = None
        self._patch_files: set[str] | None = None
        self.envs = tuple(
            {r.env for r in self.registry if r.env != "-"}
            | set(self.render_cfg.get("environments") or DEFAULT_ENVS)
        )

    # ------------------------------------------------------------- reading
    def read(self) -> None:
        excluded = [p.strip("/") for p in self.render_cfg.get("exclude_paths") or []]
        files, self.has_links = _scan(self.tree)
        root = str(self.tree)
        for rel, link in files:
            if excluded and any(rel == e or rel.startswith(e + "/") for e in excluded):
                continue
            self.files.append(rel)
            name = rel.rsplit("/", 1)[-1]
            if name in KUSTOMIZATION_FILES:
                self.kustomization_dirs.append(posixpath.dirname(rel) or ".")
                continue
            if not name.endswith((".yaml", ".yml")):
                continue
            if link:
                continue
            try:
                with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
            except OSError:
                continue
            if not any(m in text for m in _MARKERS):
                continue
            try:
                docs = load_docs_shared(text, rel)
            except YamlError as exc:
                f = exc.finding
                self.findings.append(
                    Finding(
                        "render.yaml",
                        Severity.WARNING,
                        rel,
                        f.line,
                        f"{f.message}; anything this file deploys is not rendered",
                        "Fix the YAML so the rendered diff can include it.",
                        f.column,
                    )
                )
                continue
            for line, data in docs:
                if not isinstance(data, dict):
                    continue
                bad = [
                    k
                    for k in ("metadata", "spec", "data", "stringData")
                    if k in data and not _mapping(data[k])
                ]
                if bad:
                    self._shape(
                        _Doc(rel, line, {"kind": data.get("kind")}), TypeError(f"`{bad[0]}` is not a mapping")
                    )
                    continue
                self.docs.append(_Doc(rel, line, data))

    def patch_files(self) -> set[str]:
        """The files some kustomization lists as patches: fragments, rendered only through it (memoised)."""
        if self._patch_files is None:
            found: set[str] = set()
            for folder in self.kustomization_dirs:
                for name in KUSTOMIZATION_FILES:
                    rel = name if folder == "." else f"{folder}/{name}"
                    try:
                        with open(os.path.join(self.tree, rel), encoding="utf-8", errors="replace") as fh:
                            text = fh.read()
                    except OSError:
                        continue
                    if "patches" not in text and "patchesStrategicMerge" not in text:
                        continue
                    try:
                        docs = load_docs_shared(text, rel)
                    except YamlError:
                        continue  # the kustomization's own build reports it
                    for _line, data in docs:
                        if isinstance(data, dict):
                            refs = (resolve_ref(folder, r) for r in kustomization_patch_refs(data))
                            found.update(r for r in refs if r)
            self._patch_files = found
        return self._patch_files

    def is_dir(self, rel: str) -> bool:
        """Tell whether ``rel`` is a directory of the tree (memoised; targets share paths)."""
        if rel not in self._dirs:
            self._dirs[rel] = os.path.isdir(os.path.join(self.tree, rel))
        return self._dirs[rel]

    # ------------------------------------------------------------- clusters
    def clusters(self) -> list[ClusterInfo]:
        found: dict[str, ClusterInfo] = {}
        for doc in self.docs:
            if doc.data.get("kind") == "Secret":
                info = cluster_from_secret(doc.data)
                if info is not None:
                    found.setdefault(info.name, info)
        for reg in self.registry:
            found.setdefault(reg.info.name, reg.info)
        return [found[k] for k in sorted(found)]

    def registered_for_path(self, rel: str) -> _Registered | None:
        """Return the registry entry whose ``path`` holds ``rel`` (the deepest one); one lookup per folder."""
        while rel:
            reg = self._by_path.get(rel)
            if reg is not None:
                return reg
            rel = rel.rpartition("/")[0]
        return None

    def env_from_path(self, rel: str) -> str:
        for part in rel.split("/"):
            if part in self.envs:
                return part
        return "-"

    # ------------------------------------------------------------- flux
    def _lookup(self, kind: str, namespace: str, name: str, near: str) -> _Doc | None:
        """Find a ConfigMap/Secret by name; among copies, the one closest to ``near`` wins.

        Fleets keep one ``cluster-info`` per cluster folder, all with the same name: the
        copy in the deepest folder that also holds ``near`` belongs to that cluster.
        """
        if self._index is None:
            self._index = {}
            for d in self.docs:
                if d.data.get("kind") not in ("ConfigMap", "Secret"):
                    continue
                meta = d.data.get("metadata") or {}
                key = (str(d.data.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))
                folder = posixpath.dirname(d.path)
                while True:
                    self._index.setdefault((*key, folder), []).append(d)
                    if not folder:
                        break
                    folder = posixpath.dirname(folder)
        folder = posixpath.dirname(near)
        while True:
            for ns in (namespace, ""):
                found = self._index.get((kind, ns, name, folder))
                if found:
                    if len(found) == 1:
                        return found[0]
                    return min(found, key=lambda d: (d.path.count("/"), d.path))
            if not folder:
                return None
            folder = posixpath.dirname(folder)

    def flux_variables(self, doc: _Doc) -> tuple[dict[str, str], list[str]]:
        spec = doc.data.get("spec") or {}
        post = spec.get("postBuild") or {}
        ns = str((doc.data.get("metadata") or {}).get("namespace") or "flux-system")
        variables: dict[str, str] = {}
        sources: list[str] = []
        for ref in post.get("substituteFrom") or []:
            if not isinstance(ref, dict):
                continue
            kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
            src = self._lookup(kind, ns, name, doc.path)
            if src is None:
                if not ref.get("optional"):
                    self.findings.append(
                        Finding(
                            "render.substitute-from",
                            Severity.NOTICE,
                            doc.path,
                            doc.line,
                            f"substituteFrom {kind} {ns}/{name} is not in the repository; its variables "
                            "are rendered empty in the diff",
                            "Commit it (for a Secret, an ExternalSecret is fine) or mark the reference "
                            "`optional: true`.",
                        )
                    )
                continue
            sources.append(src.path)
            if kind == "Secret":
                for k, v in (src.data.get("stringData") or {}).items():
                    variables[str(k)] = secret_token(self.secret_key, "" if v is None else str(v))
                for k, v in (src.data.get("data") or {}).items():
                    try:
                        raw: str | bytes = base64.b64decode(str(v), validate=True)
                    except (binascii.Error, ValueError):
                        raw = str(v)
                    variables[str(k)] = secret_token(self.secret_key, raw)
            else:
                for k, v in (src.data.get("data") or {}).items():
                    variables[str(k)] = "" if v is None else str(v)
        for k, v in (post.get("substitute") or {}).items():
            variables[str(k)] = "" if v is None else str(v)
        return variables, sources

    # ------------------------------------------------------------- flux sources and clusters
    def _is_flux_kustomization(self, doc: _Doc) -> bool:
        return (
            str(doc.data.get("apiVersion", "")).startswith(FLUX_KUSTOMIZE_GROUP)
            and doc.data.get("kind") == "Kustomization"
        )

    @staticmethod
    def _flux_path(doc: _Doc) -> str:
        spec = doc.data.get("spec") or {}
        raw = str(spec.get("path") or ".") if isinstance(spec, dict) else "."
        return posixpath.normpath(raw.lstrip("/")) if raw not in ("", "./", ".") else "."

    def _note_git_files(self, spec: Any) -> None:
        globs = _git_file_globs(spec)
        if globs is None or self.git_files is None:
            self.git_files = None
        else:
            self.git_files.extend(globs)

    def _source_doc(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if self._sources is None:  # one pass over the documents, not one per Kustomization
            self._sources = {}
            for d in self.docs:
                if str(d.data.get("apiVersion", "")).startswith("source.toolkit.fluxcd.io/"):
                    meta = d.data.get("metadata") or {}
                    key = (str(d.data.get("kind")), str(meta.get("name")))
                    self._sources.setdefault(key, []).append(d.data)
        for data in self._sources.get((kind, name), ()):
            meta = data.get("metadata") or {}
            if str(meta.get("namespace") or namespace) == namespace:  # unset: kustomize sets it
                return data
        return None

    def _git_key(self, spec: dict[str, Any]) -> tuple[str, str]:
        ref = spec.get("ref") or {}
        return norm_url(str(spec.get("url") or "")), json.dumps(
            ref if isinstance(ref, dict) else {}, sort_keys=True
        )

    def _self_sync(self, doc: _Doc) -> bool:
        """A Flux Kustomization whose own file lies in the folder it syncs: a cluster's flux-system."""
        path = self._flux_path(doc)
        return path != "." and doc.path.startswith(path + "/")

    def flux_source(self, doc: _Doc) -> str:
        """Return "" when ``doc`` (a Flux Kustomization or HelmRelease) reads this repository,
        else the source it needs (another GitRepository URL or branch, an OCIRepository, a Bucket)."""
        data = doc.data
        spec = data.get("spec") or {}
        meta = data.get("metadata") or {}
        if data.get("kind") == "HelmRelease":
            chart = (spec.get("chart") or {}).get("spec") or {} if isinstance(spec.get("chart"), dict) else {}
            ref = (
                chart.get("sourceRef")
                if isinstance(chart, dict) and chart.get("sourceRef")
                else spec.get("chartRef")
            )
            if not isinstance(ref, dict) or str(ref.get("kind")) == "HelmRepository":
                return ""
        else:
            ref = spec.get("sourceRef")
            if self.artifact_path(doc):
                return ""
        if not isinstance(ref, dict) or not ref:
            return ""
        kind = str(ref.get("kind") or "GitRepository")
        name = str(ref.get("name") or "")
        ns = str(ref.get("namespace") or meta.get("namespace") or "flux-system")
        src = self._source_doc(kind, ns, name)
        src_spec = (src or {}).get("spec") or {}
        url = (
            str(src_spec.get("url") or src_spec.get("bucketName") or "") if isinstance(src_spec, dict) else ""
        )
        if kind == "GitRepository":
            if src is None:
                if name == "flux-system":
                    return ""  # Flux bootstrap's own source
                return f"GitRepository {ns}/{name} (not defined in this repository)"
            if isinstance(src_spec, dict) and self._git_key(src_spec) in self.self_sources:
                return ""
            if name == "flux-system" and not self.self_sources:
                return ""
            ref_spec = src_spec.get("ref") if isinstance(src_spec, dict) else None
            at = ""
            if isinstance(ref_spec, dict) and ref_spec:
                at = "@" + ",".join(f"{k}={v}" for k, v in sorted(ref_spec.items()))
            return f"GitRepository {ns}/{name} ({url}{at})"
        return f"{kind} {ns}/{name}" + (f" ({url})" if url else "")

    def artifact_path(self, doc: _Doc) -> str:
        """The folder of this repository a Kustomization reads through an ``ExternalArtifact`` that
        an ``ArtifactGenerator`` copies from this repository's GitRepository; "" when there is none.

        ``copy: [{from: "@repo/apps/**", to: "@artifact/"}]`` maps artifact path ``./x`` to
        ``apps/x`` (the longest matching ``to`` wins; relative references keep working because
        the copy keeps the layout below it).
        """
        spec = doc.data.get("spec") or {}
        ref = spec.get("sourceRef") if isinstance(spec, dict) else None
        if not isinstance(ref, dict) or ref.get("kind") != "ExternalArtifact":
            return ""
        ns = str(ref.get("namespace") or (doc.data.get("metadata") or {}).get("namespace") or "flux-system")
        path = self._flux_path(doc)
        best: tuple[int, str] | None = None
        for d in self.docs:
            gen = d.data
            gspec = gen.get("spec") or {}
            if gen.get("kind") != "ArtifactGenerator" or not isinstance(gspec, dict):
                continue
            if str((gen.get("metadata") or {}).get("namespace") or "flux-system") != ns:
                continue
            aliases = {
                str(src.get("alias")): src
                for src in gspec.get("sources") or []
                if isinstance(src, dict) and src.get("kind") == "GitRepository"
            }
            for art in gspec.get("artifacts") or []:
                if not isinstance(art, dict) or str(art.get("name")) != str(ref.get("name")):
                    continue
                for copy in art.get("copy") or []:
                    if not isinstance(copy, dict):
                        continue
                    src, dst = str(copy.get("from") or ""), str(copy.get("to") or "")
                    alias, _, rest = src.partition("/")
                    alias_src = aliases.get(alias.lstrip("@"))
                    if alias_src is None or not rest.endswith("/**") or not dst.startswith("@artifact/"):
                        continue
                    repo_src = self._source_doc("GitRepository", ns, str(alias_src.get("name")))
                    own = str(alias_src.get("name")) == "flux-system" or (
                        repo_src is not None
                        and isinstance(repo_src.get("spec"), dict)
                        and self._git_key(repo_src["spec"]) in self.self_sources
                    )
                    if not own:
                        continue
                    to = dst.removeprefix("@artifact/").strip("/")
                    if to and path != to and not path.startswith(to + "/"):
                        continue
                    sub = path if not to else path[len(to) :].lstrip("/")
                    mapped = posixpath.normpath(posixpath.join(rest.removesuffix("/**"), sub or "."))
                    if best is None or len(to) > best[0]:
                        best = (len(to), mapped)
        return best[1] if best else ""

    def _files_under(self, path: str, scanner: KustomizationScanner) -> set[str]:
        """The files Flux reads for ``path``: its kustomization's closure, or every file below it."""
        if scanner.kfile(path) is not None:
            return set(scanner.closure(path).files)
        prefix = "" if path == "." else path + "/"
        out = {f for f in self.files if f.startswith(prefix)}
        for d in self.kustomization_dirs:
            if d.startswith(prefix):
                out |= scanner.closure(d).files
        return out

    def flux_reach(self, scanner: KustomizationScanner) -> None:
        """Bind files to the Flux clusters whose sync reaches them.

        Flux's standard layout: ``clusters/<name>/flux-system`` holds a Kustomization that syncs
        ``clusters/<name>`` itself (its own file lies in the folder it syncs); every file that
        folder renders belongs to cluster ``<name>`` (a ``clusters:`` registry entry's name when
        one holds it), and so, recursively, does every file reached by a Kustomization
        defined there. A file reached from several clusters belongs to each.
        """
        flux = [d for d in self.docs if self._is_flux_kustomization(d)]
        roots = [d for d in flux if self._self_sync(d)]
        synced = {self._flux_path(r) for r in roots}
        # a bootstrapped folder (clusters/<name>/flux-system with gotk-*.yaml) whose sync is not
        # committed: Flux syncs clusters/<name> all the same
        implicit = sorted(
            {
                posixpath.dirname(posixpath.dirname(f))
                for f in self.files
                if posixpath.basename(posixpath.dirname(f)) == "flux-system"
                and posixpath.basename(f) in ("gotk-sync.yaml", "gotk-components.yaml")
                and posixpath.dirname(posixpath.dirname(f))
            }
            - synced
        )
        for root in roots:
            spec = self._source_doc(
                "GitRepository",
                str(((root.data.get("spec") or {}).get("sourceRef") or {}).get("namespace") or "flux-system"),
                str(((root.data.get("spec") or {}).get("sourceRef") or {}).get("name") or ""),
            )
            if spec and isinstance(spec.get("spec"), dict):
                self.self_sources.add(self._git_key(spec["spec"]))
        for d in self.docs:  # bootstrap's own GitRepository
            meta = d.data.get("metadata") or {}
            spec = d.data.get("spec")
            if (
                d.data.get("kind") == "GitRepository"
                and meta.get("name") == "flux-system"
                and isinstance(spec, dict)
            ):
                self.self_sources.add(self._git_key(spec))
        by_file: dict[str, list[_Doc]] = {}
        for d in flux:
            by_file.setdefault(d.path, []).append(d)
        reach: dict[str, dict[str, str]] = {}
        for path, root_file in [(self._flux_path(r), r.path) for r in roots] + [
            (p, p + "/flux-system") for p in implicit
        ]:
            reg = self.registered_for_path(root_file)
            cluster = reg.info.name if reg else posixpath.basename(path)
            env = reg.env if reg else self.env_from_path(path)
            if env == "-":  # a cluster named like its environment: production, prod-use1
                env = next((e for e in self.envs if cluster == e or cluster.startswith(e + "-")), "-")
            pending, seen = [path], set()
            while pending:
                current = pending.pop()
                if current in seen:
                    continue
                seen.add(current)
                for rel in self._files_under(current, scanner):
                    reach.setdefault(rel, {}).setdefault(cluster, env)
                    for d in by_file.get(rel, []):
                        if not self.flux_source(d):
                            pending.append(self.artifact_path(d) or self._flux_path(d))
        self.reach = {rel: sorted(found.items()) for rel, found in reach.items()}

    def flux_targets(self) -> list[Target]:
        targets = []
        names = {
            str((d.data.get("metadata") or {}).get("name"))
            for d in self.docs
            if str(d.data.get("apiVersion", "")).startswith(FLUX_KUSTOMIZE_GROUP)
        }
        for doc in self.docs:
            try:
                targets.extend(self._flux_target(doc, names))
            except (TypeError, AttributeError, ValueError, KeyError) as exc:
                self._shape(doc, exc)
                continue
        return targets

    def _spec_targets(self, doc: _Doc, name: str, places: list[tuple[str, str]], why: str) -> list[Target]:
        """Targets that diff ``doc`` itself (its spec), one per place, for what is not rendered here."""
        return [
            Target(
                name=name.replace("{cluster}", cluster),
                kind="objects",
                path="",
                cluster=cluster,
                env=env,
                source=doc.path,
                line=doc.line,
                objects_yaml=json.dumps([doc.data], sort_keys=True),
                blind=why,
            )
            for cluster, env in places
        ]

    def _not_a_dir(self, doc: _Doc, what: str, hint: str) -> None:
        message = f"{what} is not a directory of this repository; it is not rendered"
        self.findings.append(Finding("render.path", Severity.WARNING, doc.path, doc.line, message, hint))

    def _shape(self, doc: _Doc, exc: Exception) -> None:
        kind = doc.data.get("kind", "object")
        self.findings.append(
            Finding(
                "render.shape",
                Severity.ERROR,
                doc.path,
                doc.line,
                f"{kind} {(doc.data.get('metadata') or {}).get('name', '')} has an unexpected shape "
                f"({type(exc).__name__}: {exc}); it is not rendered",
                f"Check this {kind} against its schema (kubectl explain or the project's CRD).",
            )
        )

    def _flux_target(self, doc: _Doc, names: set[str]) -> list[Target]:
        data = doc.data
        if not str(data.get("apiVersion", "")).startswith(FLUX_KUSTOMIZE_GROUP):
            return []
        if data.get("kind") != "Kustomization":
            return []
        if doc.path in self.patch_files():  # a fragment: it shows in what the kustomization renders
            return []
        meta = data.get("metadata") or {}
        source = self.flux_source(doc)
        if source:
            variables, _sources = self.flux_variables(doc)
            name = f"flux/{{cluster}}/{meta.get('namespace') or 'flux-system'}/{meta.get('name')}"
            why = f"its source is {source}, not this repository: only its spec is diffed"
            spec_targets = self._spec_targets(doc, name, self.places(doc.path, variables), why)
            if doc.path in self.reach:  # a cluster's sync renders this file: its spec shows there, patched
                return [replace(t, objects_yaml="[]") for t in spec_targets]
            return spec_targets
        spec = data.get("spec") or {}
        raw_path = str(spec.get("path") or ".")
        path = posixpath.normpath(raw_path.lstrip("/")) if raw_path not in ("", "./", ".") else "."
        path = self.artifact_path(doc) or path
        if path.startswith(".."):
            self.findings.append(
                Finding(
                    "render.path",
                    Severity.ERROR,
                    doc.path,
                    doc.line,
                    f"Flux Kustomization path `{raw_path}` leaves the repository",
                    "Use a path relative to the repository root.",
                )
            )
            return []
        if not self.is_dir(path):
            self._not_a_dir(
                doc,
                f"Flux Kustomization {meta.get('name')}: `spec.path` `{raw_path}`",
                "Fix `spec.path`, or ignore this if the source is another repository.",
            )
            return []
        options = self._options(doc, f"Flux Kustomization {meta.get('name')}", path, "flux", spec)
        variables, sources = self.flux_variables(doc)
        deps_raw = spec.get("dependsOn") or []
        if not isinstance(deps_raw, list) or not all(isinstance(d, dict) for d in deps_raw):
            raise TypeError("`spec.dependsOn` must be a list of {name: ...} entries")
        depends = tuple(
            sorted(str(d.get("name")) for d in spec.get("dependsOn") or [] if isinstance(d, dict))
        )
        for dep in depends:
            if dep not in names:
                self.findings.append(
                    Finding(
                        "render.depends-on",
                        Severity.WARNING,
                        doc.path,
                        doc.line,
                        f"Flux Kustomization {meta.get('name')} depends on `{dep}`, which is not defined "
                        "in this repository",
                        "Fix the name in `spec.dependsOn` or add the Kustomization it waits for.",
                    )
                )
        return [
            Target(
                name=f"flux/{cluster}/{meta.get('namespace') or 'flux-system'}/{meta.get('name')}",
                kind="flux",
                path=path,
                cluster=cluster,
                env=env,
                source=doc.path,
                line=doc.line,
                namespace=str(spec.get("targetNamespace") or ""),
                variables=tuple(sorted(variables.items())),
                var_sources=tuple(sorted(set(sources))),
                depends_on=depends,
                options=options,
            )
            for cluster, env in self.places(doc.path, variables)
        ]

    def places(self, rel: str, variables: dict[str, str] | None = None) -> list[tuple[str, str]]:
        """Every (cluster, env) a target defined in ``rel`` deploys to: one, or one per Flux cluster
        whose sync reaches the file."""
        reached = self.reach.get(rel)
        if reached and self.registered_for_path(rel) is None:
            env = next((variables[k] for k in ENV_VARS if variables and variables.get(k)), "")
            return [(cluster, env or cluster_env) for cluster, cluster_env in reached]
        return [self.place(rel, variables)]

    def place(self, rel: str, variables: dict[str, str] | None = None) -> tuple[str, str]:
        reg = self.registered_for_path(rel)
        if reg is not None:
            return reg.info.name, reg.env
        reached = self.reach.get(rel)
        if reached and len(reached) == 1:
            return reached[0]
        variables = variables or {}
        cluster = next((variables[k] for k in CLUSTER_VARS if variables.get(k)), "-")
        env = next((variables[k] for k in ENV_VARS if variables.get(k)), "") or self.env_from_path(rel)
        return cluster, env

    # ------------------------------------------------------------- argo cd
    def _app_targets(self, app: dict[str, Any], doc: _Doc, clusters: list[ClusterInfo]) -> list[Target]:
        meta = app.get("metadata") or {}
        spec = app.get("spec") or {}
        dest = spec.get("destination") or {}
        dest_name, dest_server = str(dest.get("name") or ""), str(dest.get("server") or "")
        info = next(
            (
                c
                for c in clusters
                if (dest_name and c.name == dest_name) or (dest_server and c.server == dest_server)
            ),
            None,
        )
        local = not info and (dest_server == LOCAL_SERVER or dest_name == "in-cluster")
        cluster = info.name if info else "in-cluster" if local else (dest_name or dest_server or "-")
        reg = next((r for r in self.registry if r.info.name == cluster), None)
        env = (
            reg.env
            if reg
            else (info.labels.get("env") or info.labels.get("environment") if info else None)
            or str((meta.get("labels") or {}).get("env") or "")
            or self.env_from_path(doc.path)
        )
        if "source" in spec and not isinstance(spec["source"], dict):
            raise TypeError("`spec.source` must be a mapping")
        if "sources" in spec and not isinstance(spec["sources"], list):
            raise TypeError("`spec.sources` must be a list")
        sources = list(spec.get("sources") or []) or (
            [spec["source"]] if isinstance(spec.get("source"), dict) else []
        )
        self_urls, self_revs = self._argo_self()
        repo_urls = [str(u) for u in (self.render_cfg.get("argocd") or {}).get("repo_urls") or []]
        refs = {  # `ref` sources of this repository: their files are read as `$ref/...` values
            str(src["ref"])
            for src in sources
            if isinstance(src, dict)
            and src.get("ref")
            and (not self_urls or norm_url(str(src.get("repoURL") or "")) in self_urls)
        }
        unrendered: list[str] = []
        value_files: list[str] = []
        out = []
        allowed = {
            str(r).rstrip("/") for r in ((self.render_cfg.get("helm") or {}).get("repositories") or [])
        }
        own = [str(s.get("repoURL")) for s in sources if isinstance(s, dict) and s.get("ref")]
        own = [u for u in own if not self_urls or norm_url(u) in self_urls] + repo_urls
        app_name = str(meta.get("name"))
        for idx, src in enumerate(sources):
            chart_url = str(src.get("repoURL") or "").rstrip("/") if isinstance(src, dict) else ""
            if chart_url and "://" not in chart_url:  # Argo CD's `registry-1.docker.io/charts`: OCI
                chart_url = f"oci://{chart_url}"
            if isinstance(src, dict) and src.get("chart") and chart_url in allowed:
                remote = RemoteChart(chart_url, str(src["chart"]), str(src.get("targetRevision") or ""))
                resolved = argo_helm(
                    src, ".", [s for s in sources if isinstance(s, dict)], own, app_name, remote
                )
                if not isinstance(resolved, Skip):
                    out.append(
                        Target(
                            name=f"argocd/{app_name}" + (f"#{idx}" if len(sources) > 1 else ""),
                            kind="argocd",
                            path=".",
                            cluster=cluster,
                            env=env or "-",
                            source=doc.path,
                            line=doc.line,
                            namespace=str(dest.get("namespace") or ""),
                            helm=resolved.to_json(),
                        )
                    )
                    continue
                severity = Severity.ERROR if resolved.blocking else Severity.NOTICE
                self.findings.append(
                    Finding("render.helm", severity, doc.path, doc.line, resolved.message, resolved.hint)
                )
                unrendered.append(f"Helm chart `{src.get('chart')}` from {src.get('repoURL')}")
                continue
            if isinstance(src, dict) and src.get("chart"):
                self.findings.append(
                    Finding(
                        "render.helm-source",
                        Severity.NOTICE,
                        doc.path,
                        doc.line,
                        f"Helm chart `{src.get('chart')}` from {src.get('repoURL')} is not rendered: that "
                        "Helm repository is not allowed; the Application and its Helm values are diffed",
                        f"To have it rendered, list {chart_url} in `render.helm.repositories` of "
                        "the bot's configuration; else review the chart version and values in the diff.",
                    )
                )
                unrendered.append(f"Helm chart `{src.get('chart')}` from {src.get('repoURL')}")
                helm = src.get("helm")
                for vf in (helm.get("valueFiles") if isinstance(helm, dict) else None) or []:
                    ref, _, rest = str(vf).partition("/")
                    here = posixpath.normpath(rest) if rest else ""
                    if ref.startswith("$") and ref[1:] in refs and here in self._file_set:
                        value_files.append(here)
                continue
            if not isinstance(src, dict) or src.get("path") is None:
                continue
            url, rev = str(src.get("repoURL") or ""), str(src.get("targetRevision") or "")
            if self_urls and norm_url(url) not in self_urls:
                unrendered.append(f"source {url} (another repository)")
                continue
            if rev.lower() not in self_revs:
                unrendered.append(f"source {url} at revision `{rev}` (another revision)")
                continue
            raw = str(src["path"])
            path = posixpath.normpath(raw.lstrip("/")) if raw not in ("", ".", "./") else "."
            if path.startswith("..") or not self.is_dir(path):
                self._not_a_dir(
                    doc,
                    f"Argo CD Application {meta.get('name')}: source path `{raw}`",
                    "Fix `source.path`, or list this repository in render.argocd.repo_urls so other "
                    "repositories are skipped quietly.",
                )
                continue
            directory = src.get("directory") or {}
            kustomize = src.get("kustomize")
            what = f"Argo CD Application {meta.get('name')}"
            opts = self._options(doc, what, path, "argocd", kustomize) if isinstance(kustomize, dict) else ""
            helm = self._argo_helm(src, path, sources, repo_urls, doc, str(meta.get("name")))
            if helm is None:
                continue
            options = sorted(k for k in ("helm", "plugin") if src.get(k) and not (k == "helm" and helm))
            if options:
                self.findings.append(
                    Finding(
                        "render.argocd-options",
                        Severity.NOTICE,
                        doc.path,
                        doc.line,
                        f"Argo CD source options {', '.join(f'`{k}`' for k in options)} are not applied "
                        "in the rendered diff",
                        "Review them by hand, or move kustomize options into the kustomization.yaml.",
                    )
                )
            suffix = f"#{idx}" if len(sources) > 1 else ""
            out.append(
                Target(
                    name=f"argocd/{meta.get('name')}{suffix}",
                    kind="argocd",
                    path=path,
                    cluster=cluster,
                    env=env or "-",
                    source=doc.path,
                    line=doc.line,
                    namespace=str(dest.get("namespace") or ""),
                    recurse=bool(directory.get("recurse")) if isinstance(directory, dict) else False,
                    include=str(directory.get("include") or "") if isinstance(directory, dict) else "",
                    exclude=str(directory.get("exclude") or "") if isinstance(directory, dict) else "",
                    options=opts,
                    helm=helm,
                )
            )
        if unrendered:
            why = f"{'; '.join(unrendered)} not rendered from this repository: only the Application is diffed"
            name = f"argocd/{meta.get('name')}" + ("#spec" if out else "")
            (spec_target,) = self._spec_targets(
                _Doc(doc.path, doc.line, app), name, [(cluster, env or "-")], why
            )
            out.append(replace(spec_target, blind_inputs=tuple(sorted(set(value_files)))))
        return out

    def _options(self, doc: _Doc, what: str, path: str, kind: str, spec: dict[str, Any]) -> str:
        """The target's kustomize options (see render.overlay); on the repository root, a notice."""
        common = spec.get("commonMetadata") if kind == "flux" else None
        options = options_json(kind, spec, common)
        if path != "." or not needs_build_spec(options):
            return options
        self.findings.append(
            Finding(
                "render.options",
                Severity.NOTICE,
                doc.path,
                doc.line,
                f"{what}: kustomize options are not applied in the preview (the path is the repository root)",
                "Review them by hand, or move them into the kustomization.yaml of the path.",
            )
        )
        return options_json(kind, {}, common)

    def _appset_notice(self, doc: _Doc, name: str, why: str) -> None:
        self.findings.append(
            Finding(
                "render.applicationset",
                Severity.NOTICE,
                doc.path,
                doc.line,
                f"ApplicationSet {name}: {why}",
                "Review the Applications it generates by hand; the ApplicationSet itself is diffed.",
            )
        )

    def _argo_helm(
        self, src: dict[str, Any], path: str, sources: list[Any], repo_urls: list[str], doc: _Doc, app: str
    ) -> str | None:
        """The Helm options of a source whose path is a chart folder (Argo CD then runs Helm), as JSON;
        "" when the path is no chart, None when the source cannot be rendered (a finding says why)."""
        if not os.path.isfile(os.path.join(self.tree, path, CHART_FILE)):
            return ""
        resolved = argo_helm(src, path, [s for s in sources if isinstance(s, dict)], repo_urls, app)
        if isinstance(resolved, Skip):
            severity = Severity.ERROR if resolved.blocking else Severity.NOTICE
            finding = Finding("render.helm", severity, doc.path, doc.line, resolved.message, resolved.hint)
            self.findings.append(finding)
            return None
        return resolved.to_json()

    @property
    def _file_set(self) -> set[str]:
        if self._files_cache is None:
            self._files_cache = set(self.files)
        return self._files_cache

    def _argo_self(self) -> tuple[set[str], set[str]]:
        """The URLs and revisions of this repository as Argo CD Applications name it.

        URLs: ``render.argocd.repo_urls`` when set; else the repoURL most Application sources
        with a path that exists here use (and those of ApplicationSet git generators). Revisions:
        ``HEAD``, empty, ``main``, ``master`` and the one those sources use most. An empty URL
        set means "not known": every URL is taken as this repository.
        """
        if self._argo is not None:
            return self._argo
        configured = {norm_url(str(u)) for u in (self.render_cfg.get("argocd") or {}).get("repo_urls") or []}
        urls: Counter[str] = Counter()
        revs: Counter[str] = Counter()
        for d in self.docs:
            if not str(d.data.get("apiVersion", "")).startswith(ARGO_GROUP):
                continue
            for src in _sources_in(d.data):
                url = str(src.get("repoURL") or "")
                if "{{" in url or not url:
                    continue
                here = src.get("path") is not None and self.is_dir(str(src["path"]).strip("/") or ".")
                if here or src.get("_generator"):
                    urls[norm_url(url)] += 1
                    revs[str(src.get("targetRevision") or src.get("revision") or "").lower()] += 1
        top = max(urls.values(), default=0)
        found = configured or {u for u, n in urls.items() if n == top}
        common = revs.most_common(1)[0][0] if revs else ""
        self._argo = (found, {"", "head", "main", "master", common})
        return self._argo

    def argocd_targets(self) -> list[Target]:
        clusters = self.clusters()
        ctx = AppSetContext(tree=self.tree, clusters=clusters, go_engine=self.go_engine)
        targets: list[Target] = []
        for doc in self.docs:
            api = str(doc.data.get("apiVersion", ""))
            if not api.startswith(ARGO_GROUP):
                continue
            kind = doc.data.get("kind")
            if kind == "Application":
                try:
                    targets.extend(self._app_targets(doc.data, doc, clusters))
                except (TypeError, AttributeError, ValueError, KeyError) as exc:
                    self._shape(doc, exc)
            elif kind == "ApplicationSet":
                name = str((doc.data.get("metadata") or {}).get("name"))
                self.reads_tree = self.reads_tree or _has_key(doc.data.get("spec"), "git")
                self._note_git_files(doc.data.get("spec"))
                ctx.unreachable.clear()
                try:
                    apps = expand_appset(doc.data, ctx)
                    generated = [t for app in apps for t in self._app_targets(app, doc, clusters)]
                except TemplateUnavailable as exc:
                    self._appset_notice(doc, name, f"its Go templates cannot be evaluated here ({exc})")
                    continue
                except (GeneratorError, TemplateError, YamlError, TypeError, AttributeError, KeyError) as exc:
                    self.findings.append(
                        Finding(
                            "render.applicationset",
                            Severity.ERROR,
                            doc.path,
                            doc.line,
                            f"ApplicationSet {name} cannot be expanded: {exc}",
                            "Argo CD would fail the same way; fix the generators or the template.",
                        )
                    )
                    continue
                if ctx.unreachable:
                    kinds = ", ".join(f"`{k}`" for k in sorted(ctx.unreachable))
                    self._appset_notice(
                        doc,
                        name,
                        f"generators {kinds} ask a live service and generate nothing in this preview",
                    )
                hub, hub_env = self.place(doc.path)
                if hub == "-":
                    local = next((r for r in self.registry if r.info.server == LOCAL_SERVER), None)
                    hub, hub_env = (local.info.name, local.env) if local else ("in-cluster", "-")
                targets.append(
                    Target(
                        name=f"applicationset/{name}",
                        kind="objects",
                        path="",
                        cluster=hub,
                        env=hub_env,
                        source=doc.path,
                        line=doc.line,
                        objects_yaml=json.dumps(apps, sort_keys=True),
                        blind=""
                        if apps or not _has_key((doc.data.get("spec") or {}).get("generators"), "clusters")
                        else "its cluster generator matches no cluster known here (Argo CD cluster secrets "
                        "in the repository, the `clusters:` registry), so it generates no Application",
                        blind_inputs=() if apps else _value_file_globs(doc.data.get("spec") or {}),
                    )
                )
                targets.extend(generated)
        return targets

    # ------------------------------------------------------------- plain roots
    def plain_targets(self, scanner: KustomizationScanner, taken: list[Target]) -> list[Target]:
        referenced: set[str] = set()
        for kind, path in sorted({(t.kind, t.path) for t in taken if t.kind != "objects"}):
            referenced.add(path)
            if scanner.kfile(path) is not None:
                referenced |= scanner.closure(path).dirs
            elif kind == "flux":  # Flux renders kustomizations nested in a plain folder
                prefix = "" if path == "." else path + "/"
                for d in self.kustomization_dirs:
                    if d.startswith(prefix):
                        referenced.add(d)
                        referenced |= scanner.closure(d).dirs
        for d in self.kustomization_dirs:
            referenced |= {x for x in scanner.closure(d).dirs if x != d}
        out = []
        for d in sorted(set(self.kustomization_dirs) - referenced):
            kfile = scanner.kfile(d)
            cluster, env = self.place(kfile.relative_to(self.tree).as_posix() if kfile else d)
            out.append(
                Target(
                    name=f"kustomize/{d}",
                    kind="kustomize",
                    path=d,
                    cluster=cluster,
                    env=env,
                    source=f"{d}/kustomization.yaml" if d != "." else "kustomization.yaml",
                )
            )
        return out


def discover(
    tree: Path, config: dict[str, Any], *, secret_key: bytes, go_engine: GoEngine | None = None
) -> Discovery:
    """Return the targets of ``tree`` (sorted by name), discovery findings and the scanner used.

    ``go_engine`` evaluates Argo CD ApplicationSet Go templates (the sandboxed runner of
    :mod:`bot.render_runtime.gotemplate_runner`); None: Go templates are reported as not evaluated.
    """
    finder = _Finder(tree, config, secret_key, go_engine)
    finder.read()
    scanner = KustomizationScanner(tree, has_links=finder.has_links)
    finder.flux_reach(scanner)
    targets = finder.flux_targets() + finder.argocd_targets()
    targets += finder.plain_targets(scanner, targets)
    unique: dict[str, Target] = {}
    for t in targets:
        name = t.name
        n = 2
        while name in unique:
            name = f"{t.name}~{n}"
            n += 1
        unique[name] = t if name == t.name else Target(**{**_asdict(t), "name": name})
    return Discovery(
        targets=[unique[k] for k in sorted(unique)],
        findings=finder.findings,
        scanner=scanner,
        reads_other_files=finder.reads_tree or finder.has_links,
        git_files=None if finder.has_links or finder.git_files is None else tuple(finder.git_files),
    )


_PLACEHOLDER = re.compile(r"\{\{-?\s*\.?([^{}]*?)\s*-?\}\}")


def _value_file_globs(spec: dict[str, Any]) -> tuple[str, ...]:
    """Globs of the ``$ref/...`` Helm value files an ApplicationSet's template reads.

    Placeholders filled by the generators' literal ``values`` (``{{values.addonChart}}``) are
    substituted; any other placeholder (a cluster's name, label or annotation) becomes ``*``.
    """
    literals: dict[str, str] = {}

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for key, v in value.items():
                if key == "values" and isinstance(v, dict):
                    for k, x in v.items():
                        if isinstance(x, str | int | float) and "{{" not in str(x):
                            literals.setdefault(f"values.{k}", str(x))
                collect(v)
        elif isinstance(value, list):
            for v in value:
                collect(v)

    collect(spec.get("generators"))
    out = set()
    for src in _sources_in(spec.get("template")):
        helm = src.get("helm")
        for vf in (helm.get("valueFiles") if isinstance(helm, dict) else None) or []:
            ref, _, rest = str(vf).partition("/")
            if ref.startswith("$") and rest:
                out.add(_PLACEHOLDER.sub(lambda m: literals.get(m.group(1), "*"), rest))
    return tuple(sorted(out))


def _sources_in(value: Any) -> list[dict[str, Any]]:
    """Every Argo CD source mapping (``source``, ``sources[]``) and git generator nested in ``value``;
    git generators are marked ``_generator``."""
    out: list[dict[str, Any]] = []
    if isinstance(value, dict):
        for key, v in value.items():
            if key == "source" and isinstance(v, dict):
                out.append(v)
            elif key == "sources" and isinstance(v, list):
                out.extend(x for x in v if isinstance(x, dict))
            elif key == "git" and isinstance(v, dict):
                out.append({**v, "_generator": True})
            out.extend(_sources_in(v))
    elif isinstance(value, list):
        for v in value:
            out.extend(_sources_in(v))
    return out


def _git_file_globs(value: Any) -> list[str] | None:
    """The ``files[].path`` globs of every git generator nested in ``value`` (None: one is not a string)."""
    found: list[str] = []
    if isinstance(value, dict):
        git = value.get("git")
        if isinstance(git, dict):
            for entry in git.get("files") or ():
                path = entry.get("path") if isinstance(entry, dict) else None
                if not isinstance(path, str) or "{{" in path or "$" in path:
                    return None  # a templated path could name any file
                found.append(path.lstrip("/"))
        items: list[Any] = list(value.values())
    elif isinstance(value, list):
        items = value
    else:
        return found
    for item in items:
        more = _git_file_globs(item)
        if more is None:
            return None
        found.extend(more)
    return found


def _has_key(value: Any, key: str) -> bool:
    """Tell whether ``key`` names an entry of any mapping nested in ``value``."""
    if isinstance(value, dict):
        return key in value or any(_has_key(v, key) for v in value.values())
    if isinstance(value, list):
        return any(_has_key(v, key) for v in value)
    return False


def same_discovery(base_tree: Path, head_tree: Path, changed_paths: Iterable[str]) -> bool:
    """Tell whether :func:`discover` must find the same targets in both trees.

    ``changed_paths`` must list every path that differs between the trees. True only when
    every changed path is a regular file in both trees (nothing added, removed, or turned into
    a link), none is a kustomization file, and no changed YAML file holds, on either side,
    anything discovery reads (Flux or Argo CD objects, ConfigMaps, Secrets). Any doubt
    answers False, so callers fall back to discovering the head tree.
    """
    for rel in changed_paths:
        if rel.rsplit("/", 1)[-1] in KUSTOMIZATION_FILES:
            return False
        texts = []
        for tree in (base_tree, head_tree):
            path = tree / rel
            if path.is_symlink() or not path.is_file():
                return False
            if is_yaml(rel):
                try:
                    texts.append(path.read_text(encoding="utf-8", errors="replace"))
                except OSError:
                    return False
        if discovery_reads(rel, texts):
            return False
    return True


def is_yaml(rel: str) -> bool:
    """Whether discovery parses the file ``rel`` (a YAML file)."""
    return rel.endswith((".yaml", ".yml"))


def discovery_reads(rel: str, texts: Iterable[str]) -> bool:
    """Whether a change to the regular file ``rel`` may change what :func:`discover` finds.

    ``texts``: its YAML text on each side (none for other files). True for a kustomization
    file, and for YAML that holds, on either side, anything discovery reads.
    """
    if rel.rsplit("/", 1)[-1] in KUSTOMIZATION_FILES:
        return True
    return any(m in text for text in texts for m in _MARKERS)


def _asdict(t: Target) -> dict[str, Any]:
    return {f: getattr(t, f) for f in Target.__slots__}


_RUN_KEY = os.urandom(32)


def discover_targets(tree: Path, config: dict[str, Any], *, secret_key: bytes | None = None) -> list[Target]:
    """Return every target the repository at ``tree`` deploys (see :func:`discover`)."""
    return discover(tree, config, secret_key=_RUN_KEY if secret_key is None else secret_key).targets
