"""Render the Helm charts of a target with the sandboxed engine (:mod:`helm_runner`).

The decisions (which chart, which values, which order) are :mod:`bot.domain.render.helm`'s; this
module reads the chart folders of the tree, asks the runner, applies Flux post-renderers with the
same kustomize runner as every other build, and turns problems into findings.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from bot.domain.model import Finding, Severity
from bot.domain.render import fastyaml
from bot.domain.render.helm import (
    CHART_FILE,
    ArgoHelm,
    ChartRequest,
    Skip,
    argo_request,
    chart_references,
    flux_request,
    is_helm_release,
    kustomize_charts,
    kustomize_request,
)
from bot.domain.render.kustomize import (
    KUSTOMIZATION_FILES,
    KustomizationScanner,
    KustomizeError,
)
from bot.domain.render.result import Target
from bot.domain.yamlio import YamlError
from bot.render_runtime.helm_fetch import HelmFetchFailed, fetch_chart
from bot.render_runtime.helm_runner import HelmEngineMissing, HelmRenderFailed, default_runner
from bot.render_runtime.kustomize_runner import run_kustomize

RULE = "render.helm"
MEMO_RENDERS = 20000
_RENDERS: dict[str, list[dict[str, Any]]] = {}
_DIGESTS: dict[tuple[str, str], tuple[tuple[tuple[str, tuple[int, int, int, int]], ...], str]] = {}
_REFS: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
_Refs = tuple[frozenset[str], frozenset[str]]
_FOLDERS: weakref.WeakKeyDictionary[KustomizationScanner, tuple[dict[str, list[str]], dict[str, _Refs]]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def allowed_repositories(config: dict[str, Any]) -> tuple[str, ...]:
    """``render.helm.repositories`` of the (base branch's) configuration, normalised."""
    helm = ((config.get("render") or {}).get("helm") or {}) if isinstance(config, dict) else {}
    repos = helm.get("repositories") if isinstance(helm, dict) else None
    return tuple(
        sorted(
            {str(r).rstrip("/") for r in repos or [] if str(r).startswith(("http://", "https://", "oci://"))}
        )
    )


def is_chart_dir(tree: Path, rel: str) -> bool:
    return (tree / rel / CHART_FILE).is_file()


def chart_files(tree: Path, folder: str) -> list[str]:
    """Every regular file of a chart folder (subcharts in ``charts/`` included), repo-relative."""
    return _listing(tree, folder)[0]


def _listing(tree: Path, folder: str) -> tuple[list[str], list[str]]:
    root = tree / folder
    files: list[str] = []
    dirs_seen: list[str] = []
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        rel_dir = Path(dirpath).relative_to(tree).as_posix()
        dirs_seen.append(rel_dir)
        for name in sorted(names):
            if not (Path(dirpath) / name).is_symlink():
                files.append(f"{rel_dir}/{name}")
    return files, dirs_seen


def chart_digest(tree: Path, folder: str) -> str:
    """Hash a chart folder's files. Memoised per folder; the memo holds while no file or folder of
    the chart changed identity, size or time (a stat per path instead of a walk and a read)."""
    key = (str(tree), folder)
    with _LOCK:
        hit = _DIGESTS.get(key)
    if hit is not None:
        try:
            if all(_stat(tree / rel) == stamp for rel, stamp in hit[0]):
                return hit[1]
        except OSError:
            pass
    files, dirs = _listing(tree, folder)
    try:
        stamps = tuple((rel, _stat(tree / rel)) for rel in (*dirs, *files))
    except OSError:
        stamps = ()
    digest = _hash_files(tree, files)
    if stamps:
        with _LOCK:
            if len(_DIGESTS) > 4096:
                _DIGESTS.clear()
            _DIGESTS[key] = (stamps, digest)
    return digest


def _stat(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _hash_files(tree: Path, files: list[str]) -> str:
    h = hashlib.sha256()
    for rel in files:
        try:
            data = (tree / rel).read_bytes()
        except OSError:
            data = b"-"
        h.update(f"\0{rel}\0".encode() + hashlib.sha256(data).digest())
    return h.hexdigest()


def _values_reader(tree: Path) -> Callable[[str], dict[str, Any] | None]:
    def read(rel: str) -> dict[str, Any] | None:
        path = tree / rel
        if path.is_symlink() or not path.is_file():
            return None
        try:
            loaded = fastyaml.load_one(path.read_text(encoding="utf-8", errors="replace"), rel)
        except YamlError:
            return None
        return loaded if isinstance(loaded, dict) else {} if loaded is None else None

    return read


def _finding(where: str, line: int, message: str, hint: str, severity: Severity) -> Finding:
    return Finding(RULE, severity, where, line, message, hint)


def _post_render(
    objects: list[dict[str, Any]], renderers: tuple[dict[str, Any], ...]
) -> list[dict[str, Any]]:
    """Apply Flux ``postRenderers[].kustomize`` (patches, JSON 6902 and strategic-merge patches, images)."""
    for spec in renderers:
        patches: list[dict[str, Any]] = []
        for p in spec.get("patches") or []:
            if isinstance(p, dict) and isinstance(p.get("patch"), str):
                patches.append({k: p[k] for k in ("patch", "target") if k in p})
        for p in spec.get("patchesStrategicMerge") or []:
            patches.append({"patch": yaml.safe_dump(p)})
        for p in spec.get("patchesJson6902") or []:
            if isinstance(p, dict):
                patches.append(
                    {"patch": yaml.safe_dump(p.get("patch") or []), "target": p.get("target") or {}}
                )
        kustomization: dict[str, Any] = {"resources": ["helm-output.yaml"]}
        if patches:
            kustomization["patches"] = patches
        if spec.get("images"):
            kustomization["images"] = spec["images"]
        with tempfile.TemporaryDirectory(prefix="gitops-bot-postrender-") as tmp:
            Path(tmp, "helm-output.yaml").write_text(yaml.safe_dump_all(objects), encoding="utf-8")
            Path(tmp, "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
            text = run_kustomize(Path(tmp), ".")
        objects = [d for d in fastyaml.load_all(text) if isinstance(d, dict)]
    return objects


def render_chart(
    tree: Path, request: ChartRequest, cluster_scoped: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Render one chart request; namespaced objects without a namespace get the release's.

    Raises :class:`HelmRenderFailed`, :class:`HelmEngineMissing` or :class:`KustomizeError`.
    """
    if request.remote is not None:
        archive, digest = fetch_chart(request.remote.repo_url, request.remote.chart, request.remote.version)
    else:
        archive, digest = tree / request.chart_dir, chart_digest(tree, request.chart_dir)
    what = [digest, request.values, request.release, request.namespace, request.crds, request.post_renderers]
    key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()
    with _LOCK:
        hit = _RENDERS.get(key)
    if hit is not None:  # the same chart, values, release and namespace render the same objects
        return hit
    objects = _render_fresh(archive, request, digest, cluster_scoped)
    with _LOCK:
        if len(_RENDERS) >= MEMO_RENDERS:
            _RENDERS.clear()
        _RENDERS[key] = objects
    return objects


def forget() -> None:
    """Empty the memo of chart renders (benchmarks: a cold start)."""
    with _LOCK:
        _RENDERS.clear()
        _REFS.clear()
        _REPOSITORIES.clear()
        _DIGESTS.clear()


def _render_fresh(
    chart: Path, request: ChartRequest, digest: str, cluster_scoped: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    manifests = default_runner().render(
        chart,
        key=digest,
        values=request.values,
        name=request.release,
        namespace=request.namespace,
        crds=request.crds,
    )
    objects: list[dict[str, Any]] = []
    for template, text in manifests:
        try:
            docs = fastyaml.load_all(text)
        except yaml.YAMLError as exc:
            raise HelmRenderFailed(f"{template} rendered YAML that does not parse: {exc}") from exc
        objects.extend(d for d in docs if isinstance(d, dict) and d.get("kind"))
    if request.post_renderers:
        objects = _post_render(objects, request.post_renderers)
    out = []
    for obj in objects:
        meta = obj.get("metadata")
        if isinstance(meta, dict) and not meta.get("namespace") and not cluster_scoped(obj):
            obj = {**obj, "metadata": {**meta, "namespace": request.namespace}}
        out.append(obj)
    return out


def _render_or_find(
    tree: Path,
    request: ChartRequest | Skip,
    where: tuple[str, int],
    findings: list[Finding],
    cluster_scoped: Callable[[dict[str, Any]], bool],
) -> list[dict[str, Any]]:
    if isinstance(request, Skip):
        severity = Severity.ERROR if request.blocking else Severity.NOTICE
        findings.append(_finding(*where, request.message, request.hint, severity))
        return []
    if request.remote is None and not is_chart_dir(tree, request.chart_dir):
        findings.append(
            _finding(
                *where,
                f"{request.where}: `{request.chart_dir}` is not a Helm chart folder of this repository "
                "(no Chart.yaml); the chart is not rendered",
                "Fix the chart path.",
                Severity.ERROR,
            )
        )
        return []
    try:
        return render_chart(tree, request, cluster_scoped)
    except HelmFetchFailed as exc:
        findings.append(
            _finding(
                *where,
                f"{request.where}: chart `{request.remote.chart if request.remote else ''}` could not be "
                f"fetched ({exc}); it is not rendered, its values are diffed",
                "Check the chart name and version, or run the check again if the repository was down.",
                Severity.WARNING,
            )
        )
    except HelmEngineMissing as exc:
        findings.append(
            _finding(*where, str(exc), "Install helm-python-sdk where the bot runs.", Severity.ERROR)
        )
    except (HelmRenderFailed, KustomizeError) as exc:
        findings.append(
            _finding(
                *where,
                f"{request.where}: Helm could not render chart `{request.chart_dir}`: {exc}",
                "Run `helm template` on the chart with these values locally and fix the error it reports.",
                Severity.ERROR,
            )
        )
    return []


def expand_helm_releases(
    tree: Path,
    target: Target,
    objects: list[dict[str, Any]],
    secret_key: bytes,
    findings: list[Finding],
    cluster_scoped: Callable[[dict[str, Any]], bool],
    repositories: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Return ``objects`` followed by what each Flux HelmRelease among them renders to.

    ``repositories`` are the Helm repositories charts may be fetched from (``render.helm.repositories``).
    """
    releases = [o for o in objects if is_helm_release(o)]
    if not releases:
        return objects
    read = _values_reader(tree)
    out = list(objects)
    known = objects
    if repositories and any(_needs_repository(hr, objects) for hr in releases):
        known = [*objects, *_repositories_in(tree)]  # a HelmRepository applied by another Kustomization
    for hr in releases:
        request = flux_request(hr, known, secret_key, read, repositories)
        found: list[Finding] = []
        out.extend(_render_or_find(tree, request, (target.source, target.line), found, cluster_scoped))
        if found:  # pinned to the file that defines the release: one finding for every cluster using it
            where = _locate(tree, target, _name(hr))
            findings.extend(replace(f, path=where[0], line=where[1]) if where else f for f in found)
    return out


def _needs_repository(hr: dict[str, Any], objects: list[dict[str, Any]]) -> bool:
    chart = (hr.get("spec") or {}).get("chart") or {}
    source = ((chart.get("spec") or {}) if isinstance(chart, dict) else {}).get("sourceRef") or {}
    if not isinstance(source, dict) or source.get("kind") != "HelmRepository":
        return False
    return not any(o.get("kind") == "HelmRepository" and _name(o) == source.get("name") for o in objects)


_REPOSITORIES: dict[tuple[str, int, int], list[dict[str, Any]]] = {}


def _repositories_in(tree: Path) -> list[dict[str, Any]]:
    """Every Flux HelmRepository committed in ``tree`` (memoised per tree folder)."""
    st = tree.stat()
    key = (str(tree), st.st_ino, st.st_mtime_ns)
    with _LOCK:
        hit = _REPOSITORIES.get(key)
    if hit is not None:
        return hit
    found: list[dict[str, Any]] = []
    for dirpath, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(dirpath) / name
            if not name.endswith((".yaml", ".yml")) or path.is_symlink():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            if "HelmRepository" not in text or "source.toolkit.fluxcd.io" not in text:
                continue
            try:
                docs = fastyaml.load_docs(text, name)
            except YamlError:
                continue
            found.extend(
                d
                for _line, d in docs
                if isinstance(d, dict)
                and d.get("kind") == "HelmRepository"
                and str(d.get("apiVersion", "")).startswith("source.toolkit.fluxcd.io/")
            )
    with _LOCK:
        if len(_REPOSITORIES) > 64:
            _REPOSITORIES.clear()
        _REPOSITORIES[key] = found
    return found


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, dict) else ""


def _locate(tree: Path, target: Target, name: str) -> tuple[str, int] | None:
    """Find the file and line of the HelmRelease ``name`` among the files ``target`` builds."""
    scanner = KustomizationScanner(tree)
    if scanner.kfile(target.path) is not None:
        files = sorted(scanner.closure(target.path).files)
    else:
        files = [rel for rel in chart_files(tree, target.path) if rel.endswith((".yaml", ".yml"))]
    for rel in files:
        path = tree / rel
        if not rel.endswith((".yaml", ".yml")) or path.is_symlink():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "HelmRelease" not in text:
            continue
        try:
            docs = fastyaml.load_docs(text, rel)
        except YamlError:
            continue
        for line, doc in docs:
            if isinstance(doc, dict) and is_helm_release(doc) and _name(doc) == name:
                return rel, line
    return None


def render_argo_helm(
    tree: Path, target: Target, findings: list[Finding], cluster_scoped: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Render an Argo CD Helm source (the target's path is the chart folder)."""
    spec = ArgoHelm.from_json(target.helm)
    request = argo_request(spec, target.path, target.namespace, _values_reader(tree))
    return _render_or_find(tree, request, (target.source, target.line), findings, cluster_scoped)


# ----------------------------------------------------------------------- change detection


def _file_refs(tree: Path, rel: str, digests: dict[str, str]) -> tuple[frozenset[str], frozenset[str]]:
    if not rel.endswith((".yaml", ".yml")):
        return frozenset(), frozenset()
    try:
        data = (tree / rel).read_bytes()
    except OSError:
        return frozenset(), frozenset()
    if b"toolkit.fluxcd.io" not in data:
        return frozenset(), frozenset()
    digest = digests.get(rel) or hashlib.sha256(data).hexdigest()
    hit = _REFS.get(digest)
    if hit is None:
        try:
            docs = [
                d for d in fastyaml.load_all(data.decode("utf-8", errors="replace")) if isinstance(d, dict)
            ]
        except yaml.YAMLError:
            docs = []
        folders, files = chart_references(docs)
        hit = (frozenset(folders), frozenset(files))
        with _LOCK:
            if len(_REFS) > 8192:
                _REFS.clear()
            _REFS[digest] = hit
    return hit


def helm_inputs(tree: Path, files: set[str], scanner: KustomizationScanner) -> set[str]:
    """The chart files and values files that the HelmReleases in ``files`` read (repo-relative).

    Each file of the tree is looked at once (memoised on ``scanner``, which lives as long as the tree
    is unchanged): a fleet's targets share most of their files.
    """
    out: set[str] = set()
    with _LOCK:
        memo = _FOLDERS.setdefault(scanner, ({}, {}))
    listing, refs = memo
    for rel in files:
        found = refs.get(rel)
        if found is None:
            found = refs[rel] = _file_refs(tree, rel, scanner.digests)
        folders, values_files = found
        out |= values_files
        for folder in folders:
            if folder not in listing:
                listing[folder] = chart_files(tree, folder) if is_chart_dir(tree, folder) else []
            out.update(listing[folder])
    return out


def argo_inputs(tree: Path, target: Target) -> set[str]:
    """The files an Argo CD Helm target reads: its chart folder and its value files."""
    spec = ArgoHelm.from_json(target.helm)
    charted = set(chart_files(tree, target.path)) if spec.remote is None else set()  # a fetched chart
    return charted | set(spec.value_files)


# ----------------------------------------------------------------------- kustomize helmCharts
HELM_OUTPUT = "gitops-bot-helm-charts.yaml"


def run_kustomize_with_charts(
    tree: Path,
    rel_dir: str,
    run: Callable[[Path, str], str] = run_kustomize,
    *,
    scanner: KustomizationScanner | None = None,
) -> str:
    """Build ``rel_dir`` with kustomize; ``helmCharts`` are rendered by the embedded engine, not by a
    ``helm`` binary (``kubectl kustomize --enable-helm`` would run one from PATH).

    Without ``helmCharts`` in the graph this is ``run`` (:func:`run_kustomize`). With them, the files the
    graph reads are copied to a temporary folder; in each kustomization with charts, the charts'
    output is written to a file that replaces ``helmCharts`` as the last entry of ``resources``, so
    the kustomization's namespace, patches, labels and other transformers apply to it as kustomize
    applies them to generated objects. Raises :class:`KustomizeError` (a chart's error included).
    ``scanner`` is the tree's, when the caller has one (a new one walks the whole tree once).
    """
    closure = (scanner or KustomizationScanner(tree)).closure(rel_dir)
    if not closure.helm_dirs:
        return run(tree, rel_dir)
    read = _values_reader(tree)
    with tempfile.TemporaryDirectory(prefix="gitops-bot-helmcharts-") as tmp:
        copy = Path(tmp)
        for rel in closure.files:
            source = tree / rel
            if source.is_file() and not source.is_symlink():
                (copy / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, copy / rel)
        for folder in sorted(closure.helm_dirs):
            kfile = next(p for p in (copy / folder).iterdir() if p.name in KUSTOMIZATION_FILES)
            data = yaml.safe_load(kfile.read_text(encoding="utf-8"))
            charts = kustomize_charts(data, folder)
            if isinstance(charts, str):  # the scanner accepted it: cannot happen, but never guess
                raise KustomizeError(charts)
            objects: list[dict[str, Any]] = []
            for chart in charts:
                request = kustomize_request(chart, read)
                if isinstance(request, Skip):
                    raise KustomizeError(request.message)
                try:
                    objects.extend(render_chart(tree, request, lambda _obj: True))
                except (HelmRenderFailed, HelmEngineMissing) as exc:
                    raise KustomizeError(f"Helm could not render chart `{chart.name}`: {exc}") from exc
            (copy / folder / HELM_OUTPUT).write_text(yaml.safe_dump_all(objects), encoding="utf-8")
            for key in ("helmCharts", "helmGlobals"):
                data.pop(key, None)
            data["resources"] = [*(data.get("resources") or []), HELM_OUTPUT]
            kfile.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return run(copy, rel_dir)
