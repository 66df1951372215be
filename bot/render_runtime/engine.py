"""Render targets at base and head, only those whose inputs changed, and diff them.

Rendering is the only place kustomize runs (see :mod:`bot.domain.render.kustomize` for
the safety rules). Targets are rendered in parallel in a thread pool (each render is a
kustomize process); results are cached by the hash of their inputs.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import posixpath
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from bot.domain.dangers import Where, find_dangers
from bot.domain.diff import TargetMeta, diff_objects, mask_secrets
from bot.domain.kinds import is_cluster_scoped
from bot.domain.model import Finding, RenderedObject, Severity
from bot.domain.render import fastyaml
from bot.domain.render.discovery import Discovery, discover, same_discovery
from bot.domain.render.fastyaml import load_docs
from bot.domain.render.flux import object_text, substitute_object
from bot.domain.render.helm import CHART_FILE
from bot.domain.render.kustomize import (
    KustomizationScanner,
    KustomizeError,
    KustomizeNotFound,
    forget_parsed_kustomizations,
    kustomization_file,
)
from bot.domain.render.kustomize_options import OptionError
from bot.domain.render.overlay import common_metadata, needs_build, option_inputs
from bot.domain.render.result import DiffResult, Target, TargetStatus
from bot.domain.yamlio import YamlError
from bot.render_runtime import helm_render
from bot.render_runtime.cache import RenderCache
from bot.render_runtime.gotemplate_runner import default_runner
from bot.render_runtime.kustomize_runner import (
    forget_kustomize_version,
    kustomize_version,
    prefetch_kustomize_version,
    run_kustomize,
)
from bot.render_runtime.overlay_build import build_options

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def _is_manifest(path: str) -> bool:
    return path.endswith(MANIFEST_SUFFIXES) and posixpath.basename(path) not in (
        "kustomization.yaml",
        "kustomization.yml",
    )


class _Inputs:
    """The files a target reads, and the problems that stop it from rendering."""

    def __init__(
        self,
        files: set[str],
        prefixes: set[str],
        findings: list[Finding],
        render_files: set[str] | None = None,
    ) -> None:
        self.files = files
        self.prefixes = prefixes
        self.findings = findings
        self.render_files = render_files if render_files is not None else set(files)
        self.has_kustomization = False

    def touched_by(self, changed: set[str]) -> bool:
        if self.files & changed:
            return True
        return any(c.startswith(p) for p in self.prefixes for c in changed)


def target_inputs(tree: Path, target: Target, scanner: KustomizationScanner) -> _Inputs:
    """Return the files ``target`` depends on in ``tree`` (repo-relative) and scan findings.

    ``files`` also holds the defining file and the variable sources (a change there
    re-renders the target); ``render_files`` only what kustomize reads.
    """
    meta = {target.source, *target.var_sources}
    prefixes: set[str] = set()
    findings: list[Finding] = []
    if target.kind == "objects":
        return _Inputs(set(meta), prefixes, findings, set())
    if target.helm:  # an Argo CD Helm source: the chart folder and its value files
        charted = helm_render.argo_inputs(tree, target)
        return _Inputs(meta | charted, prefixes, findings, charted)
    extra = _option_closures(target, scanner, findings)
    if scanner.kfile(target.path) is not None:
        closure = scanner.closure(target.path)
        findings.extend(closure.findings)
        charts = helm_render.helm_inputs(tree, closure.files, scanner)
        files = set(closure.files) | extra | charts
        inputs = _Inputs(meta | files, prefixes, findings, files)
        inputs.has_kustomization = True
        return inputs
    prefixes.add("" if target.path == "." else target.path.rstrip("/") + "/")
    render_files: set[str] = set()
    for sub in _nested_roots(tree, target):
        closure = scanner.closure(sub)
        render_files |= closure.files
        findings.extend(f for f in closure.findings if f not in findings)
    render_files |= extra
    render_files |= helm_render.helm_inputs(tree, render_files | set(_plain_files(tree, target)), scanner)
    return _Inputs(meta | render_files, prefixes, findings, render_files)


def _option_closures(target: Target, scanner: KustomizationScanner, findings: list[Finding]) -> set[str]:
    """Files read through the target's kustomize options (components, patch files)."""
    files: set[str] = set()
    try:
        paths = option_inputs(target)
    except OptionError as exc:
        findings.append(_option_finding(target, str(exc)))
        return files
    for rel in paths:
        if not (scanner.tree / rel).exists():
            continue  # kustomize (or ignoreMissingComponents) says what is missing
        if scanner.kfile(rel) is not None:
            closure = scanner.closure(rel)
            findings.extend(f for f in closure.findings if f not in findings)
            files |= closure.files
        else:
            files.add(rel)
    return files


def _option_finding(target: Target, message: str) -> Finding:
    return _option_finding_at(target.source, f"target {target.name}: {message}", target.line)


def _option_finding_at(where: str, message: str, line: int = 1) -> Finding:
    return Finding(
        "render.options",
        Severity.ERROR,
        where,
        line,
        f"kustomize options cannot be applied: {message}",
        "Fix the options (Flux and Argo CD refuse them too); paths must be local and inside the repository.",
    )


def _plain_files(tree: Path, target: Target) -> list[str]:
    """Manifest files of a directory target; kustomization subdirectories are skipped."""
    root = tree / target.path
    out: list[str] = []
    recurse = target.recurse or target.kind == "flux"
    for dirpath, dirs, files in os.walk(root):
        rel_dir = Path(dirpath).relative_to(tree).as_posix()
        if Path(dirpath) != root and kustomization_file(Path(dirpath)) is not None:
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recurse else []
        for name in sorted(files):
            rel = f"{rel_dir}/{name}" if rel_dir != "." else name
            if _is_manifest(rel) and not (Path(dirpath) / name).is_symlink():
                out.append(rel)
    if target.include or target.exclude:
        prefix = "" if target.path == "." else target.path.rstrip("/") + "/"
        out = [
            f
            for f in out
            if (not target.include or _glob_match(f.removeprefix(prefix), target.include))
            and not (target.exclude and _glob_match(f.removeprefix(prefix), target.exclude))
        ]
    return out


def _braces(pattern: str) -> list[str]:
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    head, tail = pattern[: m.start()], pattern[m.end() :]
    return [x for alt in m.group(1).split(",") for x in _braces(head + alt + tail)]


def _glob_match(rel: str, pattern: str) -> bool:
    """Match an Argo CD directory include/exclude glob (``*``, ``?``, ``[...]``, ``{a,b}``)."""
    return any(fnmatch.fnmatchcase(rel, p) for p in _braces(pattern))


def _nested_roots(tree: Path, target: Target) -> list[str]:
    if target.kind != "flux":
        return []
    root = tree / target.path
    out = []
    for dirpath, dirs, _files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if Path(dirpath) != root and kustomization_file(Path(dirpath)) is not None:
            out.append(Path(dirpath).relative_to(tree).as_posix())
            dirs[:] = []
    return out


def _file_digest(tree: Path, rel: str) -> str:
    try:
        return hashlib.sha256((tree / rel).read_bytes()).hexdigest()
    except OSError:
        return "-"


def raw_cache_key(
    tree: Path, target: Target, inputs: _Inputs, *, digests: dict[str, str] | None = None
) -> str:
    """Hash what kustomize (or the directory reader) reads for ``target``, before variables.

    Targets that render the same path from the same files share this key, so 500 clusters
    whose Flux Kustomizations point at one overlay cost one kustomize build per revision.
    ``digests`` memoises file hashes of ``tree`` across targets (only while the tree is unchanged).
    """
    h = hashlib.sha256()
    has_kustomization = inputs.has_kustomization
    settings = {
        "v": 3,
        "kustomize": kustomize_version(),
        "mode": "objects" if target.kind == "objects" else "kustomize" if has_kustomization else "dir",
        "path": target.path,
        "recurse": target.recurse or target.kind == "flux",
        "nested": target.kind == "flux",
        "objects": target.objects_yaml,
        "include": target.include,
        "exclude": target.exclude,
        "options": target.options if needs_build(target) else "",
    }
    if target.helm:
        settings["helm"] = target.helm
    h.update(json.dumps(settings, sort_keys=True).encode())
    files = set(inputs.render_files)
    if inputs.prefixes and not target.helm:
        files |= set(_plain_files(tree, target))
    for rel in sorted(files):
        digest = digests.get(rel) if digests is not None else None
        if digest is None:
            digest = _file_digest(tree, rel)
            if digests is not None:
                digests[rel] = digest
        h.update(f"\0{rel}\0{digest}".encode())
    return h.hexdigest()


def cache_key(raw_key: str, target: Target, secret_key: bytes) -> str:
    """Hash a raw render key with what post-processing adds (variables, namespace, masking key)."""
    settings = {
        "raw": raw_key,
        "kind": target.kind,
        "namespace": target.namespace,
        "variables": target.variables,
        "options": target.options,
        "mask": hashlib.sha256(b"gitops-bot-mask" + secret_key).hexdigest(),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _load_stream(text: str) -> list[dict[str, Any]]:
    return [d for d in fastyaml.load_all(text) if isinstance(d, dict)]


def _kustomize(
    tree: Path,
    rel_dir: str,
    findings: list[Finding],
    *,
    build: Callable[[], str] | None = None,
    scanner: KustomizationScanner | None = None,
) -> list[dict[str, Any]]:
    kfile = kustomization_file(tree / rel_dir)
    where = kfile.relative_to(tree).as_posix() if kfile else rel_dir
    try:
        if build is not None:
            return _load_stream(build())
        return _load_stream(
            helm_render.run_kustomize_with_charts(tree, rel_dir, run_kustomize, scanner=scanner)
        )
    except KustomizeError as exc:
        if (
            tree / rel_dir / CHART_FILE
        ).is_file():  # Helm + kustomize: a plugin builds it, not kustomize alone
            findings.append(
                Finding(
                    "render.kustomize",
                    Severity.NOTICE,
                    where,
                    1,
                    f"`{rel_dir}` holds a Helm chart and a kustomization, which a config-management plugin "
                    f"builds at deploy time (helm template, then kustomize); kustomize alone fails ({exc}), "
                    "so it is not rendered",
                    "Nothing to do if a plugin builds this folder; otherwise run `kubectl kustomize` on it.",
                )
            )
            return []
        findings.append(
            Finding(
                "render.kustomize",
                Severity.ERROR,
                where,
                1,
                f"kustomize could not build `{rel_dir}`: {exc}",
                "Run `kubectl kustomize` on this directory locally and fix the error it reports.",
            )
        )
    except KustomizeNotFound as exc:
        findings.append(
            Finding("render.kustomize", Severity.ERROR, where, 1, str(exc), "Install kustomize or kubectl.")
        )
    except yaml.YAMLError as exc:
        findings.append(
            Finding("render.kustomize", Severity.ERROR, where, 1, f"unreadable kustomize output: {exc}", "")
        )
    except OptionError as exc:
        findings.append(_option_finding_at(where, str(exc)))
    return []


def _render_raw(
    tree: Path, target: Target, findings: list[Finding], scanner: KustomizationScanner | None = None
) -> list[dict[str, Any]]:
    if target.kind == "objects":
        loaded = json.loads(target.objects_yaml or "[]")
        return [o for o in loaded if isinstance(o, dict)]
    if target.helm:
        return helm_render.render_argo_helm(tree, target, findings, is_cluster_scoped)
    if needs_build(target):
        return _kustomize(tree, target.path, findings, build=lambda: build_options(tree, target))
    if kustomization_file(tree / target.path) is not None:
        return _kustomize(tree, target.path, findings, scanner=scanner)
    objects: list[dict[str, Any]] = []
    for rel in _plain_files(tree, target):
        text = (tree / rel).read_text(encoding="utf-8", errors="replace")
        try:
            docs = load_docs(text, rel)
        except YamlError as exc:
            findings.append(exc.finding)
            continue
        for _line, data in docs:
            if (
                isinstance(data, dict)
                and data.get("kind")
                and data.get("apiVersion")
                and isinstance(data.get("metadata") or {}, dict)
            ):
                objects.append(data)
    for sub in _nested_roots(tree, target):
        objects.extend(_kustomize(tree, sub, findings, scanner=scanner))
    return objects


_TEXTS: dict[int, tuple[dict[str, Any], str]] = {}
MEMO_TEXTS = 4096


def _shared_text(obj: dict[str, Any]) -> str:
    """Return ``object_text(obj)`` for a raw render shared through the cache (dumped once per object).

    Keyed by identity; the entry holds the object, so its id cannot be reused while cached.
    Raw renders are never modified (every later step copies), so the text stays right.
    """
    hit = _TEXTS.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    text = object_text(obj)
    if len(_TEXTS) >= MEMO_TEXTS:
        _TEXTS.clear()
    _TEXTS[id(obj)] = (obj, text)
    return text


def forget_memos() -> None:
    """Empty every in-process memo of rendering (parses, resolved scalars, dumps, kustomize's version).

    The next render then costs what it costs in a fresh process (for benchmarks; the bot
    keeps them, they are bounded).
    """
    fastyaml.forget()
    forget_parsed_kustomizations()
    forget_kustomize_version()
    _TEXTS.clear()
    helm_render.forget()


def _postprocess(
    target: Target,
    objects: list[dict[str, Any]],
    secret_key: bytes,
    *,
    shared: bool = False,
    helm: tuple[Path, list[Finding], tuple[str, ...]] | None = None,
) -> list[dict[str, Any]]:
    """Substitute variables, set namespaces, render Flux HelmReleases (with ``helm``), mask Secrets."""
    variables = dict(target.variables)
    out = []
    for obj in objects:
        if variables:
            obj = substitute_object(obj, variables, text=_shared_text(obj) if shared else None)
        obj = common_metadata(target, obj)
        if target.namespace and not is_cluster_scoped(obj):
            meta = dict(obj.get("metadata") or {})
            if target.kind == "flux" or not meta.get("namespace"):
                meta["namespace"] = target.namespace
                obj = {**obj, "metadata": meta}
        out.append(obj)
    if helm is not None:  # the charts of Flux HelmReleases, rendered after substitution
        out = helm_render.expand_helm_releases(
            helm[0], target, out, secret_key, helm[1], is_cluster_scoped, helm[2]
        )
    return [mask_secrets(obj, secret_key) for obj in out]


def render_target(
    tree: Path,
    target: Target,
    scanner: KustomizationScanner,
    *,
    secret_key: bytes,
    cache: RenderCache | None = None,
    inputs: _Inputs | None = None,
    helm_repositories: tuple[str, ...] = (),
) -> tuple[list[dict[str, Any]], list[Finding]]:
    """Render one target of ``tree``; return its objects (secrets masked) and findings.

    A target whose kustomization graph is refused (remote base, path leaving the
    repository, Helm chart) is not rendered at all: the findings say why.
    """
    try:
        return _render_target(
            tree, target, scanner, secret_key=secret_key, cache=cache, inputs=inputs, repos=helm_repositories
        )
    except Exception as exc:  # one broken target must not hide the others
        return [], [
            Finding(
                "render.internal",
                Severity.ERROR,
                target.source,
                target.line,
                f"target {target.name} could not be rendered: {type(exc).__name__}: {exc}",
                "This is a bug in gitops-bot; please report it with this message.",
            )
        ]


def _render_target(
    tree: Path,
    target: Target,
    scanner: KustomizationScanner,
    *,
    secret_key: bytes,
    cache: RenderCache | None,
    inputs: _Inputs | None,
    repos: tuple[str, ...] = (),
) -> tuple[list[dict[str, Any]], list[Finding]]:
    inputs = inputs or target_inputs(tree, target, scanner)
    if any(f.blocking for f in inputs.findings):
        return [], list(inputs.findings)

    def raw() -> tuple[list[dict[str, Any]], list[Finding]]:
        findings: list[Finding] = []
        return _render_raw(tree, target, findings, scanner), findings

    if cache is None:
        objects, findings = raw()
        objects = _postprocess(target, objects, secret_key, helm=(tree, findings, repos))
        return objects, [*inputs.findings, *findings]
    raw_key = raw_cache_key(tree, target, inputs, digests=scanner.digests)

    def processed() -> tuple[list[dict[str, Any]], list[Finding]]:
        objects, found = cache.get_or_render("raw-" + raw_key, raw)
        findings = list(found)
        return _postprocess(target, objects, secret_key, shared=True, helm=(tree, findings, repos)), findings

    key = cache_key(raw_key, target, secret_key)
    if repos:  # charts from these repositories are rendered: another result
        key = hashlib.sha256(json.dumps([key, repos]).encode()).hexdigest()
    objects, findings = cache.get_or_render(key, processed)
    return list(objects), [*inputs.findings, *findings]


def _sort_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(o: dict[str, Any]) -> tuple[str, str, str, str]:
        meta = o.get("metadata") or {}
        return (
            str(o.get("kind")),
            str(meta.get("namespace") or ""),
            str(meta.get("name") or ""),
            str(o.get("apiVersion")),
        )

    return sorted(objects, key=key)


def _workers(config: dict[str, Any]) -> int:
    configured = (config.get("render") or {}).get("parallelism")
    return max(1, int(configured)) if configured else max(1, os.cpu_count() or 1)


def compute_diff(
    base_dir: Path,
    head_dir: Path,
    config: dict[str, Any],
    *,
    changed_paths: Sequence[str] | None = None,
    cache: RenderCache | None = None,
    secret_key: bytes,
) -> DiffResult:
    """Render what changed between ``base_dir`` and ``head_dir`` and diff it per target.

    With ``changed_paths`` (repo-relative), only targets whose inputs or definition
    changed are rendered; ``None`` renders every target. ``config`` is the base
    revision's configuration. Findings come from the head side; a target that cannot
    be rendered at base gets a notice, not a blocking error.

    With ``changed_paths`` (listing every path that differs between the trees), the head tree
    is not discovered when :func:`same_discovery` proves it finds the base's targets and
    findings: the changes touch no file discovery reads, and nothing in the base's discovery
    reads other files (see :attr:`Discovery.reads_other_files`).
    """
    prefetch_kustomize_version()
    cache = cache if cache is not None else RenderCache()
    base = discover(base_dir, config, secret_key=secret_key, go_engine=default_runner())
    reused = (
        changed_paths is not None
        and not base.reads_other_files
        and same_discovery(base_dir, head_dir, changed_paths)
    )
    if reused:
        head = Discovery(
            targets=base.targets,
            findings=list(base.findings),
            scanner=KustomizationScanner(head_dir, has_links=False),
            reads_other_files=False,
        )
    else:
        head = discover(head_dir, config, secret_key=secret_key, go_engine=default_runner())
    # A problem that the base revision has too is not this pull request's doing.
    known = {(f.rule, f.path, f.message) for f in base.findings} if changed_paths is not None else set()
    result = DiffResult(findings=[f for f in head.findings if (f.rule, f.path, f.message) not in known])
    base_by = {t.name: t for t in base.targets}
    head_by = {t.name: t for t in head.targets}
    names = sorted(set(base_by) | set(head_by))
    result.targets_total = len(names)
    changed = set(changed_paths) if changed_paths is not None else None

    jobs: list[tuple[str, Target, Path, Discovery, _Inputs]] = []
    for name in names:
        bt, ht = base_by.get(name), head_by.get(name)
        b_in = target_inputs(base_dir, bt, base.scanner) if bt and base.scanner else None
        if reused and changed is not None and b_in is not None:
            # same targets over the same kustomization graph: the base's inputs tell, and
            # only the targets to render get their head inputs scanned
            needed = b_in.touched_by(changed)
            h_in = target_inputs(head_dir, ht, head.scanner) if needed and ht and head.scanner else None
        else:
            h_in = target_inputs(head_dir, ht, head.scanner) if ht and head.scanner else None
            needed = (
                changed is None
                or bt != ht
                or bool(b_in and b_in.touched_by(changed))
                or bool(h_in and h_in.touched_by(changed))
            )
        if needed and changed is not None and (bt is None) != (ht is None):
            # a plain kustomization root that only became (or stopped being) a root of its own
            # because what referenced it was removed (or added): it deploys nothing new
            one, one_in = (bt, b_in) if bt is not None else (ht, h_in)
            needed = not (
                one is not None and one.kind == "kustomize" and one_in and not one_in.touched_by(changed)
            )
        if not needed:
            t = ht or bt
            assert t is not None
            result.statuses.append(TargetStatus(name, t.cluster, t.env, "unchanged"))
            continue
        if bt and b_in:
            jobs.append(("base", bt, base_dir, base, b_in))
        if ht and h_in:
            jobs.append(("head", ht, head_dir, head, h_in))

    repos = helm_render.allowed_repositories(config)

    def run(job: tuple[str, Target, Path, Discovery, _Inputs]) -> tuple[list[dict[str, Any]], list[Finding]]:
        _side, target, tree, disc, inputs = job
        assert disc.scanner is not None
        return render_target(
            tree,
            target,
            disc.scanner,
            secret_key=secret_key,
            cache=cache,
            inputs=inputs,
            helm_repositories=repos,
        )

    with ThreadPoolExecutor(max_workers=_workers(config)) as pool:
        outputs = list(pool.map(run, jobs))

    rendered: dict[tuple[str, str], tuple[list[dict[str, Any]], list[Finding]]] = {}
    for job, out in zip(jobs, outputs, strict=True):
        rendered[(job[0], job[1].name)] = out
    rendered_names = sorted({job[1].name for job in jobs})
    result.targets_rendered = len(rendered_names)
    for name in rendered_names:
        bt, ht = base_by.get(name), head_by.get(name)
        b_objs, b_find = rendered.get(("base", name), ([], []))
        h_objs, h_find = rendered.get(("head", name), ([], []))
        result.findings.extend(h_find)
        b_failed = any(f.blocking for f in b_find)
        h_failed = any(f.blocking for f in h_find)
        if b_failed and not h_failed and bt is not None:
            result.findings.append(
                Finding(
                    "render.base",
                    Severity.NOTICE,
                    bt.source,
                    bt.line,
                    f"target {name} could not be rendered at the base revision; its objects are shown "
                    "as added",
                    "Nothing to do if this pull request fixes it.",
                )
            )
        t = ht or bt
        assert t is not None
        state = "failed" if h_failed else "added" if bt is None else "removed" if ht is None else "rendered"
        result.statuses.append(TargetStatus(name, t.cluster, t.env, state, len(b_objs), len(h_objs)))
        if h_failed:
            continue
        meta = TargetMeta(name, t.cluster, t.env)
        result.changes.extend(diff_objects(meta, [] if b_failed else b_objs, h_objs))
        where = Where(t.cluster, t.env, t.path or t.source, t.kind)
        result.dangers.extend(find_dangers(where, [] if b_failed else b_objs, h_objs))
        if ht is not None:
            result.rendered_head.extend(
                RenderedObject(name, ht.cluster, ht.env, ht.path or ht.source, obj)
                for obj in _sort_objects(h_objs)
            )
    result.findings.extend(_blind_notices(base_by, head_by, changed, {c.target for c in result.changes}))
    result.statuses.sort(key=lambda s: (s.env, s.cluster, s.target))
    result.changes.sort(key=lambda c: c.sort_key())
    result.findings = sorted(set(result.findings), key=Finding.sort_key)
    result.dangers.sort(key=lambda d: d.sort_key())
    return result


def _blind_notices(
    base_by: dict[str, Target],
    head_by: dict[str, Target],
    changed: set[str] | None,
    changed_targets: set[str],
) -> list[Finding]:
    """Notices for targets a change reaches that the bot cannot fully render, and one notice
    for changed targets whose cluster is unknown: never a silent "no changes"."""
    out = []
    for name in sorted(set(base_by) | set(head_by)):
        t = head_by.get(name) or base_by[name]
        if not t.blind:
            continue
        touched = sorted(
            {
                c
                for p in (t.source, *t.blind_inputs)
                for c in ([p] if changed is None or p in changed else [])
                + [c for c in changed or () if "*" in p and fnmatch.fnmatchcase(c, p)]
                if "*" not in c
            }
        )
        if not touched:
            continue
        out.append(
            Finding(
                "render.unrendered",
                Severity.NOTICE,
                t.source,
                t.line,
                f"target {name}: {t.blind}; this pull request changes "
                f"{', '.join(f'`{p}`' for p in touched)}, which it reads",
                "Review what it deploys by hand (its source is not rendered here).",
            )
        )
    unknown = sorted(n for n in changed_targets if (head_by.get(n) or base_by[n]).cluster == "-")
    if unknown:
        t = head_by.get(unknown[0]) or base_by[unknown[0]]
        shown = ", ".join(f"`{n}`" for n in unknown[:10]) + (
            f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        )
        out.append(
            Finding(
                "render.cluster",
                Severity.NOTICE,
                t.source,
                t.line,
                f"the cluster of {len(unknown)} changed target(s) cannot be known: {shown}",
                "Add the cluster to the `clusters:` registry (with its `path`), or use Flux's "
                "`clusters/<name>/flux-system` layout or an Argo CD cluster secret.",
            )
        )
    return out


def render_tree(
    tree: Path,
    config: dict[str, Any],
    *,
    secret_key: bytes,
    only: Sequence[str] = (),
    cache: RenderCache | None = None,
    discovery: Discovery | None = None,
) -> tuple[list[tuple[Target, list[dict[str, Any]]]], list[Finding]]:
    """Render every target of ``tree`` (or only the names in ``only``); for ``gitops-bot render``.

    ``discovery`` is the tree's, when the caller already discovered it.
    """
    disc = discovery or discover(tree, config, secret_key=secret_key, go_engine=default_runner())
    assert disc.scanner is not None
    scanner = disc.scanner
    targets = [t for t in disc.targets if not only or t.name in only]
    findings = list(disc.findings)

    inputs = {t.name: target_inputs(tree, t, scanner) for t in targets}

    repos = helm_render.allowed_repositories(config)

    def run(t: Target) -> tuple[list[dict[str, Any]], list[Finding]]:
        return render_target(
            tree,
            t,
            scanner,
            secret_key=secret_key,
            cache=cache,
            inputs=inputs[t.name],
            helm_repositories=repos,
        )

    with ThreadPoolExecutor(max_workers=_workers(config)) as pool:
        outputs = list(pool.map(run, targets))
    out = []
    for t, (objs, f) in zip(targets, outputs, strict=True):
        findings.extend(f)
        out.append((t, _sort_objects(objs)))
    return out, sorted(set(findings), key=Finding.sort_key)
