"""Expand Argo CD ApplicationSets offline: list, cluster, git (directories, files), matrix, merge.

Semantics follow Argo CD's ApplicationSet controller (see ``docs/render.md``): fasttemplate
(``{{key}}``, flat string parameters, unknown keys left unchanged) or Go templates
(``goTemplate: true``, nested parameters, ``missingkey=error`` on request), evaluated by the
real Go engine (:mod:`bot.domain.render.gotemplate`), map keys included; generator-level
template overrides; post-selectors; matrix (two children, the second may use the first's
parameters) and merge (``mergeKeys``; with Go templates nested maps merge key by key, as
Argo CD's mergo merge does); ``templatePatch`` (a templated strategic merge patch over each
generated Application). Git generators read this repository's tree, the cluster generator
reads Argo CD cluster secrets or the ``clusters:`` registry. Generators that ask a live
service (``scmProvider``, ``pullRequest``, ``clusterDecisionResource``, ``plugin``) generate
nothing here; :attr:`AppSetContext.unreachable` names them so the caller can say so.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.domain.render.gotemplate import (
    GoEngine,
    TemplateError,
    TemplateUnavailable,
    render_fast,
    render_many,
)
from bot.domain.render.merge import deep_merge
from bot.domain.yamlio import YamlError, load_documents, to_plain

LOCAL_SERVER = "https://kubernetes.default.svc"
LIVE_GENERATORS = ("scmProvider", "pullRequest", "clusterDecisionResource", "plugin")
GENERATOR_KINDS = ("list", "clusters", "git", "matrix", "merge", *LIVE_GENERATORS)


class GeneratorError(ValueError):
    """An ApplicationSet cannot be expanded; the message says why, as Argo CD would."""


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """One cluster Argo CD knows: from a cluster secret or the repo config's ``clusters:``."""

    name: str
    server: str
    project: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class AppSetContext:
    """What generators may read: the repository tree and the known clusters."""

    tree: Path | None
    clusters: Sequence[ClusterInfo] = ()
    go_engine: GoEngine | None = None
    unreachable: set[str] = field(default_factory=set)
    """Generators met that need a live service (they generated nothing)."""


def sanitize_name(value: str) -> str:
    """Lowercase and replace characters not allowed in a Kubernetes name by ``-`` (Argo's normaliser)."""
    out = re.sub(r"[^a-z0-9.-]", "-", value.lower())
    return out.strip("-.")[:253]


def _go_glob(pattern: str, greedy: bool) -> re.Pattern[str]:
    """Translate a Go ``path.Match`` pattern (or a greedy file glob) into a regex."""
    out = []
    i = 0
    star = ".*" if greedy else "[^/]*"
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern[i : i + 2] == "**":
                out.append(".*")
                i += 2
                if pattern[i : i + 1] == "/":
                    out.append("(?:/)?")
                    i += 1
                continue
            out.append(star)
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                raise GeneratorError(f"syntax error in pattern {pattern!r}")
            body = pattern[i + 1 : end]
            if body.startswith("^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


# ---------------------------------------------------------------- parameters


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        for idx, v in enumerate(value):
            _flatten(f"{prefix}[{idx}]", v, out)
    else:
        out[prefix] = _scalar(value)


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def flat_params(params: dict[str, Any]) -> dict[str, str]:
    """Return nested parameters as Argo's flat ``a.b.c`` string keys (for selectors and merge keys)."""
    out: dict[str, str] = {}
    for k, v in params.items():
        if isinstance(v, dict):
            _flatten(k, v, out)
        elif isinstance(v, list):
            out[k] = " ".join(_scalar(x) for x in v)
        else:
            out[k] = _scalar(v)
    return out


def _strings(value: Any, out: set[str]) -> set[str]:
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.add(str(k))
            _strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _strings(v, out)
    return out


def _rebuild(value: Any, rendered: dict[str, str]) -> Any:
    if isinstance(value, str):
        return rendered.get(value, value)
    if isinstance(value, dict):
        return {rendered.get(str(k), str(k)): _rebuild(v, rendered) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebuild(v, rendered) for v in value]
    return value


def _render_fast_tree(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return render_fast(value, params)
    if isinstance(value, dict):
        return {render_fast(str(k), params): _render_fast_tree(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_fast_tree(v, params) for v in value]
    return value


def render_all(
    value: Any, params_list: Sequence[dict[str, Any]], ctx: AppSetContext, go: bool, missing_error: bool
) -> list[Any]:
    """Return ``value`` with every string (map keys too) rendered once per parameter set.

    Go templates of all parameter sets are evaluated in one call of ``ctx.go_engine``.
    """
    if not params_list:
        return []
    if not go:
        return [_render_fast_tree(value, p) for p in params_list]
    strings = sorted(s for s in _strings(value, set()) if "{{" in s)
    if not strings:
        return [copy.deepcopy(value) for _ in params_list]
    engine = ctx.go_engine
    if engine is None:
        raise TemplateUnavailable("no Go template engine is configured")
    rows = render_many(engine, strings, params_list, strict=missing_error)
    return [_rebuild(value, dict(zip(strings, row, strict=True))) for row in rows]


def _add_values(
    gen: dict[str, Any], sets: list[dict[str, Any]], ctx: AppSetContext, go: bool, missing_error: bool
) -> list[dict[str, Any]]:
    """Add a generator's ``values`` (templated with each parameter set) to its parameter sets."""
    values = gen.get("values") or {}
    if not isinstance(values, dict):
        raise GeneratorError("`values` must be a map of strings")
    if not values:
        return sets
    raw = {str(k): _scalar(v) for k, v in values.items()}
    for params, rendered in zip(sets, render_all(raw, sets, ctx, go, missing_error), strict=True):
        if go:
            params["values"] = rendered
        else:
            for k, v in rendered.items():
                params[f"values.{k}"] = v
    return sets


# ---------------------------------------------------------------- selectors


def _matches_selector(labels: dict[str, str], selector: dict[str, Any] | None) -> bool:
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != _scalar(v):
            return False
    for expr in selector.get("matchExpressions") or []:
        key = expr.get("key")
        op = expr.get("operator")
        vals = [_scalar(v) for v in expr.get("values") or []]
        if op in ("In", "NotIn") and not vals:
            raise GeneratorError(f"selector operator {op} needs at least one value")
        present = key in labels
        if op == "In" and not (present and labels[key] in vals):
            return False
        if op == "NotIn" and present and labels[key] in vals:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise GeneratorError(f"unknown selector operator {op!r}")
    return True


# ---------------------------------------------------------------- generators


def _list(gen: dict[str, Any], go: bool, missing_error: bool) -> list[dict[str, Any]]:
    sets: list[dict[str, Any]] = []
    elements = list(gen.get("elements") or [])
    raw = gen.get("elementsYaml")
    if isinstance(raw, str) and raw.strip():
        try:
            docs = load_documents(raw, "elementsYaml")
        except YamlError as exc:
            raise GeneratorError(f"elementsYaml is not valid YAML: {exc}") from exc
        extra = to_plain(docs[0].data) if docs else []
        if not isinstance(extra, list):
            raise GeneratorError("elementsYaml must hold a list of objects")
        elements.extend(extra)
    for element in elements:
        if not isinstance(element, dict):
            raise GeneratorError("list elements must be objects")
        if go:
            sets.append(copy.deepcopy(element))
            continue
        params: dict[str, Any] = {}
        for k, v in element.items():
            if k == "values" and isinstance(v, dict):
                for vk, vv in v.items():
                    params[f"values.{vk}"] = _scalar(vv)
            elif isinstance(v, dict | list):
                raise GeneratorError(
                    f"list element key {k!r} holds an object; without goTemplate elements must be strings"
                )
            else:
                params[k] = _scalar(v)
        sets.append(params)
    return sets


def _cluster_params(cluster: ClusterInfo, go: bool, local: bool = False) -> dict[str, Any]:
    params: dict[str, Any] = {
        "name": cluster.name,
        "nameNormalized": sanitize_name(cluster.name),
        "server": cluster.server,
        "project": cluster.project,
    }
    if local:
        return params
    if go:
        params["metadata"] = {"labels": dict(cluster.labels), "annotations": dict(cluster.annotations)}
    else:
        for k, v in cluster.labels.items():
            params[f"metadata.labels.{k}"] = v
        for k, v in cluster.annotations.items():
            params[f"metadata.annotations.{k}"] = v
    return params


def _clusters(gen: dict[str, Any], ctx: AppSetContext, go: bool, missing_error: bool) -> list[dict[str, Any]]:
    selector = gen.get("selector") or None
    sets = []
    has_local = False
    for cluster in ctx.clusters:
        if not _matches_selector(cluster.labels, selector):
            continue
        has_local = has_local or cluster.server == LOCAL_SERVER
        sets.append(_cluster_params(cluster, go))
    if not selector and not has_local:
        local = ClusterInfo(name="in-cluster", server=LOCAL_SERVER)
        sets.append(_cluster_params(local, go, local=True))
    sets = _add_values(gen, sets, ctx, go, missing_error)
    if gen.get("flatList"):
        return [{"clusters": sets}]
    return sets


def _path_params(dirpath: str, go: bool, prefix: str, filename: str | None = None) -> dict[str, Any]:
    segments = [s for s in dirpath.split("/") if s]
    basename = segments[-1] if segments else ""
    if go:
        p: dict[str, Any] = {
            "path": dirpath,
            "basename": basename,
            "basenameNormalized": sanitize_name(basename),
            "segments": segments,
        }
        if filename is not None:
            p["filename"] = filename
            p["filenameNormalized"] = sanitize_name(filename)
        return {prefix: {"path": p}} if prefix else {"path": p}
    key = f"{prefix}.path" if prefix else "path"
    flat = {
        key: dirpath,
        f"{key}.basename": basename,
        f"{key}.basenameNormalized": sanitize_name(basename),
    }
    for idx, seg in enumerate(segments):
        flat[f"{key}[{idx}]"] = seg
    if filename is not None:
        flat[f"{key}.filename"] = filename
        flat[f"{key}.filenameNormalized"] = sanitize_name(filename)
    return flat


def _repo_entries(tree: Path, *, dirs: bool) -> list[str]:
    """Repository-relative directories (skipping dot-directories) or files (skipping .git), no links."""
    out = []
    for p in sorted(tree.rglob("*")):
        if p.is_symlink() or not (p.is_dir() if dirs else p.is_file()):
            continue
        rel = p.relative_to(tree).as_posix()
        hidden = any(part.startswith(".") for part in rel.split("/")) if dirs else rel.startswith(".git/")
        if not hidden:
            out.append(rel)
    return out


def _select_paths(candidates: list[str], specs: list[Any], greedy: bool) -> list[str]:
    include: list[re.Pattern[str]] = []
    exclude: list[re.Pattern[str]] = []
    for spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
            raise GeneratorError("each git `directories`/`files` entry needs a string `path`")
        pattern = _go_glob(spec["path"].lstrip("/"), greedy)
        (exclude if spec.get("exclude") else include).append(pattern)
    return [
        c for c in candidates if any(p.match(c) for p in include) and not any(p.match(c) for p in exclude)
    ]


def _git(gen: dict[str, Any], ctx: AppSetContext, go: bool, missing_error: bool) -> list[dict[str, Any]]:
    if ctx.tree is None:
        raise GeneratorError("the git generator needs the repository tree")
    prefix = str(gen.get("pathParamPrefix") or "")
    sets: list[dict[str, Any]] = []
    if "directories" in gen:
        specs = list(gen.get("directories") or [])
        for d in _select_paths(_repo_entries(ctx.tree, dirs=True), specs, greedy=False):
            sets.append(_path_params(d, go, prefix))
        return _add_values(gen, sets, ctx, go, missing_error)
    if "files" in gen:
        specs = list(gen.get("files") or [])
        for f in _select_paths(_repo_entries(ctx.tree, dirs=False), specs, greedy=True):
            text = (ctx.tree / f).read_text(encoding="utf-8", errors="replace")
            try:
                docs = load_documents(text, f)
            except YamlError as exc:
                raise GeneratorError(f"git files generator: {f} is not valid YAML/JSON: {exc}") from exc
            # Like Argo CD (sigs.k8s.io/yaml): only the first document counts, a list gives one
            # parameter set per item, and an empty file gives one set with the path parameters only.
            content = to_plain(docs[0].data, f) if docs else None
            if content is None or content == []:
                content = {}
            items = content if isinstance(content, list) else [content]
            for item in items:
                if not isinstance(item, dict):
                    continue
                dirpath, _, filename = f.rpartition("/")
                if go:
                    params = copy.deepcopy(item)
                else:
                    params = {}
                    _flatten("", item, params)
                params.update(_path_params(dirpath, go, prefix, filename))
                sets.append(params)
        return _add_values(gen, sets, ctx, go, missing_error)
    raise GeneratorError("the git generator needs `directories` or `files`")


def _child(gen: dict[str, Any], where: str) -> None:
    kinds = [k for k in GENERATOR_KINDS if k in gen]
    if len(kinds) != 1:
        raise GeneratorError(f"{where}: each generator entry must hold exactly one generator, found {kinds}")
    if "template" in gen:
        pass  # ignored for children of matrix and merge, as in Argo CD


def _matrix(
    gen: dict[str, Any], ctx: AppSetContext, go: bool, missing_error: bool, depth: int
) -> list[dict[str, Any]]:
    children = gen.get("generators") or []
    if len(children) != 2:
        raise GeneratorError(
            f"the matrix generator needs exactly two child generators, found {len(children)}"
        )
    for c in children:
        _child(c, "matrix")
    first = generate(children[0], ctx, go, missing_error, depth + 1)
    out = []
    # The second child may use the first's parameters: it is rendered once per first set.
    child, values = _split_values(_strip_selector(children[1]), go)
    seconds = render_all(child, first, ctx, go, missing_error)
    for p1, interpolated, resolved in zip(first, seconds, _pre_resolve(values, first, ctx), strict=True):
        if resolved is not None:
            interpolated[next(iter(interpolated))]["values"] = resolved
        interpolated["selector"] = children[1].get("selector")
        second = generate(interpolated, ctx, go, missing_error, depth + 1)
        for p2 in second:
            if go:  # Argo CD: mergo.Merge(tmp, b) then mergo.Merge(tmp, a), both WithOverride
                out.append(deep_merge(p2, p1))
                continue
            merged = dict(p1)
            for k, v in p2.items():
                if k in merged and merged[k] != v:
                    raise GeneratorError(
                        f"found duplicate key {k} with different value, a: {merged[k]} ,b: {v}; "
                        "use pathParamPrefix to tell two git generators apart"
                    )
                merged[k] = v
            out.append(merged)
    return out


def _split_values(child: dict[str, Any], go: bool) -> tuple[dict[str, Any], dict[str, str] | None]:
    """Take the ``values`` of a Go-templated child generator out, for :func:`_pre_resolve`."""
    kind = next(iter(child), "")
    body = child.get(kind)
    if not go or not isinstance(body, dict) or not isinstance(body.get("values"), dict):
        return child, None
    values = {str(k): _scalar(v) for k, v in body["values"].items()}
    return {**child, kind: {k: v for k, v in body.items() if k != "values"}}, values


def _pre_resolve(
    values: dict[str, str] | None, params_list: list[dict[str, Any]], ctx: AppSetContext
) -> list[dict[str, str] | None]:
    """Argo CD's RenderGeneratorParams for ``values``: each one rendered with ``missingkey=error``
    against the first generator's parameters, and kept as written when a key is missing there
    (the child generator renders it again with its own parameters)."""
    if values is None:
        return [None] * len(params_list)
    out: list[dict[str, str] | None] = [dict(values) for _ in params_list]
    for key, text in values.items():
        if "{{" not in text:
            continue
        try:
            rows = render_all(text, params_list, ctx, True, True)
        except TemplateError as exc:
            if exc.kind != "missing_key":
                raise
            rows = []
            for params in params_list:
                try:
                    rows.append(render_all(text, [params], ctx, True, True)[0])
                except TemplateError as one:
                    if one.kind != "missing_key":
                        raise
                    rows.append(text)
        for resolved, rendered in zip(out, rows, strict=True):
            assert resolved is not None
            resolved[key] = str(rendered)
    return out


def _strip_selector(gen: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in gen.items() if k != "selector"}


def _merge(
    gen: dict[str, Any], ctx: AppSetContext, go: bool, missing_error: bool, depth: int
) -> list[dict[str, Any]]:
    keys = [str(k) for k in gen.get("mergeKeys") or []]
    children = gen.get("generators") or []
    if not keys:
        raise GeneratorError("the merge generator needs at least one merge key")
    if len(children) < 2:
        raise GeneratorError("the merge generator needs at least two child generators")
    for c in children:
        _child(c, "merge")

    def key_of(params: dict[str, Any]) -> str:
        # Argo CD: the JSON of {mergeKey: paramSet[mergeKey]}, top-level keys only (flat keys
        # such as `values.selector` exist only without goTemplate)
        return json.dumps({k: params.get(k) for k in sorted(set(keys))}, sort_keys=True, default=str)

    results = [generate(c, ctx, go, missing_error, depth + 1) for c in children]
    for idx, sets in enumerate(results):
        seen: set[str] = set()
        for s in sets:
            k = key_of(s)
            if k in seen:
                raise GeneratorError(
                    f"the parameters from generator {idx + 1} of the merge are not unique by the merge "
                    f"keys; duplicate key {k}"
                )
            seen.add(k)
    base = [copy.deepcopy(s) for s in results[0]]
    for later in results[1:]:
        by_key = {key_of(s): s for s in later}
        for i, s in enumerate(base):
            match = by_key.get(key_of(s))
            if match is not None:
                base[i] = deep_merge(s, match) if go else {**s, **copy.deepcopy(match)}
    return base


def generate(
    gen: dict[str, Any], ctx: AppSetContext, go: bool, missing_error: bool = False, depth: int = 0
) -> list[dict[str, Any]]:
    """Return the parameter sets of one generator entry (post-selector applied)."""
    if depth > 2:
        raise GeneratorError("matrix and merge generators may be nested only one level deep")
    kinds = [k for k in GENERATOR_KINDS if k in gen]
    if len(kinds) != 1:
        raise GeneratorError(f"each generator entry must hold exactly one generator, found {kinds or 'none'}")
    kind = kinds[0]
    body = gen[kind] or {}
    if not isinstance(body, dict):
        raise GeneratorError(f"`{kind}` must be a mapping")
    if kind in LIVE_GENERATORS:
        ctx.unreachable.add(kind)
        sets = []
    elif kind == "list":
        sets = _list(body, go, missing_error)
    elif kind == "clusters":
        sets = _clusters(body, ctx, go, missing_error)
    elif kind == "git":
        sets = _git(body, ctx, go, missing_error)
    elif kind == "matrix":
        sets = _matrix(body, ctx, go, missing_error, depth)
    else:
        sets = _merge(body, ctx, go, missing_error, depth)
    selector = gen.get("selector")
    if selector:
        sets = [s for s in sets if _matches_selector(flat_params(s) if go else s, selector)]
    return sets


def strategic_merge(target: dict[str, Any], patch: dict[str, Any], path: str = "") -> dict[str, Any]:
    """Apply a strategic merge patch to an Application (a copy), as Kubernetes' strategicpatch does.

    The Application type declares no list merge keys except ``metadata.finalizers`` (a set):
    maps merge key by key, ``null`` deletes a key, lists are replaced, ``$patch: replace``
    replaces a map and ``$patch: delete`` removes it.
    """
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    out = copy.deepcopy(target)
    for k, v in patch.items():
        if k == "$patch":
            continue
        where = f"{path}.{k}" if path else k
        if v is None or (isinstance(v, dict) and v.get("$patch") == "delete"):
            out.pop(k, None)
        elif isinstance(v, dict):
            out[k] = strategic_merge(out[k] if isinstance(out.get(k), dict) else {}, v, where)
        elif where == "metadata.finalizers" and isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = [*out[k], *(x for x in v if x not in out[k])]
        else:
            out[k] = copy.deepcopy(v)
    return out


def _patches(
    patch: str, params_list: list[dict[str, Any]], ctx: AppSetContext, go: bool, missing_error: bool
) -> list[dict[str, Any]]:
    """Render ``templatePatch`` once per parameter set and read each result as a YAML/JSON map."""
    out = []
    for text in render_all(patch, params_list, ctx, go, missing_error):
        try:
            docs = load_documents(text, "templatePatch")
        except YamlError as exc:
            raise GeneratorError(f"templatePatch does not render to valid YAML: {exc}") from exc
        data = to_plain(docs[0].data, "templatePatch") if docs else {}
        if not isinstance(data, dict):
            raise GeneratorError("templatePatch must render to a map (fields of an Application)")
        out.append(data)
    return out


def expand_appset(appset: dict[str, Any], ctx: AppSetContext) -> list[dict[str, Any]]:
    """Return the Applications an ApplicationSet generates, sorted by name.

    Raises :class:`GeneratorError` (or :class:`TemplateError`) with Argo CD's reason, and
    :class:`TemplateUnavailable` when Go templates cannot be evaluated here.
    """
    spec = appset.get("spec") or {}
    go = bool(spec.get("goTemplate"))
    options = [str(o) for o in spec.get("goTemplateOptions") or []]
    for option in options:
        if option not in ("missingkey=error", "missingkey=zero", "missingkey=default", "missingkey=invalid"):
            raise GeneratorError(f"unrecognized goTemplateOptions entry {option!r}")
    missing_error = go and "missingkey=error" in options
    template = spec.get("template") or {}
    patch = spec.get("templatePatch")
    if patch is not None and not isinstance(patch, str):
        raise GeneratorError("templatePatch must be a string (a templated YAML document)")
    namespace = str((appset.get("metadata") or {}).get("namespace") or "")
    apps: dict[str, dict[str, Any]] = {}
    for gen in spec.get("generators") or []:
        if not isinstance(gen, dict):
            raise GeneratorError("each generator must be a mapping")
        tmpl = deep_merge(template, gen["template"]) if isinstance(gen.get("template"), dict) else template
        params_list = generate(gen, ctx, go, missing_error)
        try:
            rendered_all = render_all(tmpl, params_list, ctx, go, missing_error)
            patches = _patches(patch, params_list, ctx, go, missing_error) if patch else []
        except TemplateError as exc:
            raise GeneratorError(f"template: {exc}") from exc
        for idx, rendered in enumerate(rendered_all):
            if patches:
                project = (rendered.get("spec") or {}).get("project")
                rendered = strategic_merge(rendered, patches[idx])
                if isinstance(rendered.get("spec"), dict):  # Argo CD: a patch never changes the project
                    rendered["spec"]["project"] = project
            dest = (rendered.get("spec") or {}).get("destination") or {}
            if dest.get("name") and dest.get("server"):
                raise GeneratorError("application destination can't have both name and server defined")
            meta = dict(rendered.get("metadata") or {})
            name = str(meta.get("name") or "")
            if not name:
                raise GeneratorError("the template renders an Application without a name")
            # Argo CD puts every Application in the ApplicationSet's namespace
            meta["namespace"] = namespace or str(meta.get("namespace") or "argocd")
            app = {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Application",
                "metadata": meta,
                "spec": rendered.get("spec") or {},
            }
            if name in apps and apps[name] != app:
                raise GeneratorError(f"two parameter sets generate the Application {name!r} differently")
            apps[name] = app
    return [apps[k] for k in sorted(apps)]


def cluster_from_secret(secret: dict[str, Any]) -> ClusterInfo | None:
    """Read an Argo CD cluster secret (label ``argocd.argoproj.io/secret-type: cluster``).

    Only ``name``, ``server`` and ``project`` are read, from ``stringData`` or base64
    ``data``; the ``config`` key (credentials) is never read.
    """
    import base64
    import binascii

    meta = secret.get("metadata") or {}
    labels = {str(k): _scalar(v) for k, v in (meta.get("labels") or {}).items()}
    if labels.get("argocd.argoproj.io/secret-type") != "cluster":
        return None
    fields: dict[str, str] = {}
    for key in ("name", "server", "project"):
        sd = (secret.get("stringData") or {}).get(key)
        if sd is not None:
            fields[key] = _scalar(sd)
            continue
        enc = (secret.get("data") or {}).get(key)
        if enc is not None:
            try:
                fields[key] = base64.b64decode(str(enc), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                fields[key] = ""
    if not fields.get("server"):
        return None
    annotations = {str(k): _scalar(v) for k, v in (meta.get("annotations") or {}).items()}
    return ClusterInfo(
        name=fields.get("name") or str(meta.get("name") or fields["server"]),
        server=fields["server"],
        project=fields.get("project", ""),
        labels=labels,
        annotations=annotations,
    )


__all__ = [
    "LIVE_GENERATORS",
    "AppSetContext",
    "ClusterInfo",
    "GeneratorError",
    "cluster_from_secret",
    "expand_appset",
    "flat_params",
    "generate",
    "render_all",
    "strategic_merge",
]
