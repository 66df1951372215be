"""Pure decisions for rendering Helm charts: which chart, which values, in which order.

Nothing here runs Helm: :mod:`bot.render_runtime.helm_render` does, in a sandbox. This module
turns a Flux ``HelmRelease`` (with the objects of the Flux Kustomization that applies it) or an
Argo CD Helm source into a :class:`ChartRequest` (a chart folder of this repository, merged
values, release name, namespace, CRD policy, post-renderers), or into a :class:`Skip` that says
why the chart is not rendered.

Merge orders, as the controllers do them:

- Flux: ``spec.valuesFrom`` in order (a ConfigMap's or Secret's ``valuesKey``, default
  ``values.yaml``, merged as a map; with ``targetPath`` the raw value is set at that path), then
  ``spec.values`` on top. Maps merge key by key; anything else is replaced.
- Argo CD: ``helm.valueFiles`` in order, then ``helm.values`` (or ``helm.valuesObject``, which
  wins over it), then ``helm.parameters`` (``--set``).

Values that come from a Secret are replaced by their masked token before the chart sees them, so
no Secret value can reach the diff through a template.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

import yaml

from bot.domain.diff import secret_token
from bot.domain.render import fastyaml
from bot.domain.render.merge import deep_merge
from bot.domain.yamlio import YamlError

HELM_RELEASE_GROUP = "helm.toolkit.fluxcd.io/"
SOURCE_GROUP = "source.toolkit.fluxcd.io/"
CHART_FILE = "Chart.yaml"
# The GitRepository `flux bootstrap` creates for the repository it runs from.
SELF_SOURCE_NAME = "flux-system"


@dataclass(frozen=True, slots=True)
class RemoteChart:
    """A chart of an allowed Helm repository (``render.helm.repositories``): fetched, then rendered."""

    repo_url: str
    chart: str
    version: str


@dataclass(frozen=True, slots=True)
class ChartRequest:
    """One chart to render (a folder of this repository, or ``remote``), with everything Helm needs."""

    chart_dir: str
    values: dict[str, Any]
    release: str
    namespace: str
    crds: bool = True
    post_renderers: tuple[dict[str, Any], ...] = ()
    where: str = ""
    remote: RemoteChart | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    """A chart that is not rendered, and what the reviewer should do about it."""

    message: str
    hint: str
    blocking: bool = False


@dataclass(slots=True)
class ArgoHelm:
    """An Argo CD Helm source, resolved against this repository (stored on the target as JSON)."""

    value_files: list[str] = field(default_factory=list)
    missing_ok: bool = False
    values: dict[str, Any] = field(default_factory=dict)
    parameters: list[tuple[str, str, bool]] = field(default_factory=list)
    release: str = ""
    crds: bool = True
    remote: RemoteChart | None = None  # a chart of an allowed Helm repository, not a folder here

    def to_json(self) -> str:
        remote = self.remote
        return json.dumps(
            {
                "valueFiles": self.value_files,
                "missingOk": self.missing_ok,
                "values": self.values,
                "parameters": self.parameters,
                "release": self.release,
                "crds": self.crds,
                "remote": [remote.repo_url, remote.chart, remote.version] if remote else None,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> ArgoHelm:
        data = json.loads(text)
        return cls(
            value_files=list(data["valueFiles"]),
            missing_ok=bool(data["missingOk"]),
            values=dict(data["values"]),
            parameters=[(str(a), str(b), bool(c)) for a, b, c in data["parameters"]],
            release=str(data["release"]),
            crds=bool(data["crds"]),
            remote=RemoteChart(*(str(x) for x in data["remote"])) if data.get("remote") else None,
        )


def _parse_scalar(text: str) -> Any:
    """Type a ``--set`` value as Helm's strvals does: integers, booleans and null; else a string."""
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if text.lstrip("-").isdigit() and not (text.lstrip("-").startswith("0") and len(text.lstrip("-")) > 1):
        return int(text)
    return text


def set_path(values: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Return ``values`` with ``value`` set at the dotted ``path`` (``a.b\\.c`` escapes a dot)."""
    parts: list[str] = []
    current = ""
    escaped = False
    for ch in path:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ".":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    nested: Any = value
    for part in reversed(parts):
        nested = {part: nested}
    return deep_merge(values, nested)


def mask_leaves(value: Any, key: bytes) -> Any:
    """Replace every scalar of ``value`` with its masked token (maps and lists keep their shape)."""
    if isinstance(value, dict):
        return {k: mask_leaves(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_leaves(v, key) for v in value]
    if value is None or isinstance(value, bool):
        return value
    return secret_token(key, str(value))


def is_helm_release(obj: dict[str, Any]) -> bool:
    return obj.get("kind") == "HelmRelease" and str(obj.get("apiVersion", "")).startswith(HELM_RELEASE_GROUP)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _find(objects: list[dict[str, Any]], kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    for obj in objects:
        meta = _meta(obj)
        if (
            obj.get("kind") == kind
            and meta.get("name") == name
            and (meta.get("namespace") or namespace) == namespace
        ):
            return obj
    return None


def _source_values(obj: dict[str, Any], ref: dict[str, Any], secret_key: bytes) -> tuple[Any, str | None]:
    """Return the value a ``valuesFrom`` entry takes from ``obj``, or (None, why not)."""
    key = str(ref.get("valuesKey") or "values.yaml")
    is_secret = obj.get("kind") == "Secret"
    raw: str | None = None
    data = obj.get("data") or {}
    string_data = obj.get("stringData") or {}
    if isinstance(string_data, dict) and key in string_data:
        raw = str(string_data[key])
    elif isinstance(data, dict) and key in data:
        raw = str(data[key])
        if is_secret:
            try:
                raw = base64.b64decode(raw, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None, f"key `{key}` is not base64-encoded UTF-8"
    if raw is None:
        return None, f"has no key `{key}`"
    if ref.get("targetPath"):
        return (secret_token(secret_key, raw) if is_secret else raw), None
    try:
        loaded = fastyaml.load_one(raw, key)
    except YamlError:
        return None, f"key `{key}` is not YAML"
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        return None, f"key `{key}` is not a map of values"
    return (mask_leaves(loaded, secret_key) if is_secret else loaded), None


def _helm_repository(
    hr: dict[str, Any],
    source: dict[str, Any],
    chart: str,
    version: str,
    objects: list[dict[str, Any]],
    namespace: str,
    allowed: tuple[str, ...],
) -> RemoteChart | Skip:
    """A chart from a HelmRepository: fetched only when its URL is in ``render.helm.repositories``."""
    name = _meta(hr).get("name")
    repo_ns = str(source.get("namespace") or namespace)
    repo = _find(objects, "HelmRepository", repo_ns, str(source.get("name")))
    repo_spec = (repo or {}).get("spec") or {}
    url = str(repo_spec.get("url") or "").rstrip("/")
    kind = str(repo_spec.get("type") or "default")
    listed = url in {a.rstrip("/") for a in allowed}
    if repo is not None and url and listed and (kind != "oci" or url.startswith("oci://")):
        return RemoteChart(url, chart, version)
    where = f"HelmRepository `{source.get('name')}`" + (f" ({url})" if url else "")
    hint = (
        f"To have it rendered, list {url} in `render.helm.repositories` of the bot's configuration."
        if url
        else "Review the chart version and values by hand, or keep the chart in this repository."
    )
    return Skip(
        f"HelmRelease {name}: chart `{chart}` {version and f'{version} '}comes from {where}, not from this "
        "repository; it is not rendered, its values are diffed",
        hint,
    )


def _oci_repository(
    hr: dict[str, Any],
    chart_ref: dict[str, Any],
    objects: list[dict[str, Any]],
    namespace: str,
    allowed: tuple[str, ...],
) -> RemoteChart | Skip:
    """A chart from a Flux OCIRepository (``spec.url`` names the chart, ``spec.ref.tag`` its version):
    pulled only when the registry path (the URL, or its parent) is in ``render.helm.repositories``."""
    name = _meta(hr).get("name")
    ref_ns = str(chart_ref.get("namespace") or namespace)
    repo = _find(objects, "OCIRepository", ref_ns, str(chart_ref.get("name")))
    spec = (repo or {}).get("spec") or {}
    url = str(spec.get("url") or "").rstrip("/")
    tag = str((spec.get("ref") or {}).get("tag") or "") if isinstance(spec.get("ref"), dict) else ""
    parent, _, chart = url.rpartition("/")
    listed = {a.rstrip("/") for a in allowed} & {url, parent}
    if repo is not None and url.startswith("oci://") and listed and tag:
        return RemoteChart(parent, chart, tag)
    where = f"OCIRepository `{chart_ref.get('name')}`" + (f" ({url})" if url else "")
    hint = (
        f"To have it rendered, list {parent} in `render.helm.repositories` of the bot's configuration "
        "and pin `spec.ref.tag`."
        if url
        else "Put the OCIRepository next to the HelmRelease, or review the chart by hand."
    )
    return Skip(
        f"HelmRelease {name}: the chart comes from {where}, not from this repository; "
        "it is not rendered, its values are diffed",
        hint,
    )


def _chart_source(
    hr: dict[str, Any], objects: list[dict[str, Any]], namespace: str, allowed: tuple[str, ...] = ()
) -> tuple[str, list[str]] | RemoteChart | Skip:
    """Return (chart folder, values files) of a HelmRelease whose chart lives in this repository."""
    spec = hr.get("spec") or {}
    name = _meta(hr).get("name")
    chart_ref = spec.get("chartRef")
    template: dict[str, Any] = {}
    if isinstance(chart_ref, dict):
        if chart_ref.get("kind") == "OCIRepository":
            return _oci_repository(hr, chart_ref, objects, namespace, allowed)
        if chart_ref.get("kind") != "HelmChart":
            return Skip(
                f"HelmRelease {name}: the chart comes from {chart_ref.get('kind')} "
                f"`{chart_ref.get('name')}`, "
                "outside this repository; it is not rendered, its values are diffed",
                "Review the chart version and values by hand, or keep the chart in this repository.",
            )
        ref_ns = str(chart_ref.get("namespace") or namespace)
        helm_chart = _find(objects, "HelmChart", ref_ns, str(chart_ref.get("name")))
        if helm_chart is None:
            return Skip(
                f"HelmRelease {name}: HelmChart `{chart_ref.get('name')}` is not among the objects this "
                "Kustomization applies; the chart is not rendered, its values are diffed",
                "Put the HelmChart next to the HelmRelease to have the chart rendered.",
            )
        template = helm_chart.get("spec") or {}
    else:
        chart = (spec.get("chart") or {}) if isinstance(spec.get("chart"), dict) else {}
        template = chart.get("spec") or {}
    if not isinstance(template, dict):
        return Skip(f"HelmRelease {name}: `chart.spec` is not a mapping", "Fix the HelmRelease.", True)
    source = template.get("sourceRef") or {}
    chart_path = str(template.get("chart") or "")
    if source.get("kind") == "HelmRepository":
        version = str(template.get("version") or "")
        return _helm_repository(hr, source, chart_path, version, objects, namespace, allowed)
    if source.get("kind") != "GitRepository" or source.get("name") != SELF_SOURCE_NAME:
        where = f"{source.get('kind')} `{source.get('name')}`"
        return Skip(
            f"HelmRelease {name}: chart `{chart_path}` comes from {where}, not from this repository "
            f"(GitRepository `{SELF_SOURCE_NAME}`); it is not rendered, its values are diffed",
            "Review the chart version and values by hand, or keep the chart in this repository.",
        )
    folder = repo_path(chart_path)
    if folder is None:
        return Skip(
            f"HelmRelease {name}: chart path `{chart_path}` leaves the repository",
            "Use a path relative to the repository root.",
            True,
        )
    files = [repo_path(str(f)) for f in template.get("valuesFiles") or []]
    if any(f is None for f in files):
        return Skip(f"HelmRelease {name}: a `valuesFiles` path leaves the repository", "Fix the path.", True)
    return folder, [f for f in files if f is not None]


def repo_path(raw: str, base: str = "") -> str | None:
    """Normalise ``raw`` (relative to ``base``, a repository folder); None when it leaves the repository."""
    joined = posixpath.normpath(
        posixpath.join(base, raw.lstrip("/")) if not raw.startswith("/") else raw.lstrip("/")
    )
    if joined == ".." or joined.startswith("../"):
        return None
    return joined


def flux_request(
    hr: dict[str, Any],
    objects: list[dict[str, Any]],
    secret_key: bytes,
    read_values_file: Any,
    allowed: tuple[str, ...] = (),
) -> ChartRequest | Skip:
    """Decide how to render one Flux HelmRelease.

    ``objects`` are the other objects the same Flux Kustomization applies (where ``valuesFrom``
    ConfigMaps and Secrets and a ``chartRef`` HelmChart are looked up), ``read_values_file``
    maps a repository path to its parsed YAML mapping (or None when absent).
    """
    meta = _meta(hr)
    spec = hr.get("spec") or {}
    name = str(meta.get("name") or "")
    namespace = str(meta.get("namespace") or "default")
    found = _chart_source(hr, objects, namespace, allowed)
    if isinstance(found, Skip):
        return found
    remote = found if isinstance(found, RemoteChart) else None
    folder, values_files = ("", []) if isinstance(found, RemoteChart) else found
    values: dict[str, Any] = {}
    for rel in values_files:
        loaded = read_values_file(rel)
        if loaded is None:
            return Skip(
                f"HelmRelease {name}: values file `{rel}` is missing or not a YAML mapping",
                "Fix `valuesFiles`.",
                True,
            )
        values = deep_merge(values, loaded)
    for ref in spec.get("valuesFrom") or []:
        if not isinstance(ref, dict):
            return Skip(
                f"HelmRelease {name}: a `valuesFrom` entry is not a mapping", "Fix the HelmRelease.", True
            )
        kind, ref_name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        obj = _find(objects, kind, namespace, ref_name) if kind in ("ConfigMap", "Secret") else None
        if obj is None:
            if ref.get("optional"):
                continue
            return Skip(
                f"HelmRelease {name}: `valuesFrom` {kind} `{ref_name}` is not among the objects this "
                "Kustomization applies; the chart is not rendered, its values are diffed",
                f"Commit the {kind} next to the HelmRelease (or mark the reference `optional: true`).",
            )
        value, why = _source_values(obj, ref, secret_key)
        if why is not None:
            if ref.get("optional"):
                continue
            return Skip(
                f"HelmRelease {name}: `valuesFrom` {kind} `{ref_name}` {why}", "Fix the reference.", True
            )
        if ref.get("targetPath"):
            values = set_path(values, str(ref["targetPath"]), value)
        else:
            values = deep_merge(values, value)
    inline = spec.get("values") or {}
    if not isinstance(inline, dict):
        return Skip(f"HelmRelease {name}: `spec.values` is not a mapping", "Fix the HelmRelease.", True)
    values = deep_merge(values, inline)
    target_ns = str(spec.get("targetNamespace") or "")
    release = str(spec.get("releaseName") or (f"{target_ns}-{name}" if target_ns else name))
    install = spec.get("install") or {}
    crds_policy = str((install.get("crds") if isinstance(install, dict) else None) or "Create")
    post = tuple(
        p["kustomize"]
        for p in spec.get("postRenderers") or []
        if isinstance(p, dict) and isinstance(p.get("kustomize"), dict)
    )
    return ChartRequest(
        chart_dir=folder,
        values=values,
        release=release[:53],
        namespace=target_ns or namespace,
        crds=crds_policy != "Skip",
        post_renderers=post,
        where=f"HelmRelease {namespace}/{name}",
        remote=remote,
    )


def argo_helm(
    src: dict[str, Any],
    path: str,
    sources: list[dict[str, Any]],
    repo_urls: list[str],
    app_name: str,
    remote: RemoteChart | None = None,
) -> ArgoHelm | Skip:
    """Resolve an Argo CD Helm source whose chart is the folder ``path`` of this repository.

    ``valueFiles`` are relative to the chart folder; ``$ref/...`` names a ``ref`` source, which
    must be this repository (one of ``repo_urls``, or the chart source's own ``repoURL``).
    With ``remote`` (a chart of an allowed Helm repository) only ``$ref/...`` value files are read:
    a plain one lies inside the chart archive, which is not read for values here.
    """
    helm = src.get("helm") or {}
    if not isinstance(helm, dict):
        return Skip(f"Argo CD Application {app_name}: `helm` is not a mapping", "Fix the source.", True)
    own = [*repo_urls] if remote else [*repo_urls, str(src.get("repoURL") or "")]
    refs = {str(s.get("ref")): s for s in sources if isinstance(s, dict) and s.get("ref")}
    out = ArgoHelm(
        missing_ok=bool(helm.get("ignoreMissingValueFiles")),
        release=str(helm.get("releaseName") or app_name),
        crds=not bool(helm.get("skipCrds")),
        remote=remote,
    )
    for raw in helm.get("valueFiles") or []:
        raw = str(raw)
        base = path
        if remote and not raw.startswith("$"):
            return Skip(
                f"Argo CD Application {app_name}: value file `{raw}` is inside chart `{remote.chart}`; "
                "the chart is not rendered, the Application is diffed",
                "Keep the values in this repository and name them `$ref/path` with a `ref` source.",
            )
        if raw.startswith("$"):
            ref_name, _, rest = raw[1:].partition("/")
            ref = refs.get(ref_name)
            if ref is None:
                return Skip(
                    f"Argo CD Application {app_name}: value file `{raw}` names no `ref` source `{ref_name}`",
                    "Add a source with `ref: " + ref_name + "` or fix the path.",
                    True,
                )
            if str(ref.get("repoURL") or "") not in own:
                return Skip(
                    f"Argo CD Application {app_name}: value file `{raw}` comes from {ref.get('repoURL')}, "
                    "another repository; the chart is not rendered, the Application is diffed",
                    "List this repository in render.argocd.repo_urls if it is this one.",
                )
            raw, base = rest, ""
        rel = repo_path(raw, base)
        if rel is None:
            return Skip(
                f"Argo CD Application {app_name}: value file `{raw}` leaves the repository", "Fix it.", True
            )
        out.value_files.append(rel)
    values: Any = helm.get("valuesObject")
    if values is None and helm.get("values"):
        raw_values = helm.get("values")
        try:
            values = yaml.safe_load(raw_values) if isinstance(raw_values, str) else raw_values
        except yaml.YAMLError:
            return Skip(
                f"Argo CD Application {app_name}: `helm.values` is not YAML", "Fix `helm.values`.", True
            )
    if values is not None and not isinstance(values, dict):
        return Skip(f"Argo CD Application {app_name}: Helm values are not a mapping", "Fix them.", True)
    out.values = values or {}
    for param in helm.get("parameters") or []:
        if isinstance(param, dict) and param.get("name"):
            out.parameters.append(
                (str(param["name"]), str(param.get("value") or ""), bool(param.get("forceString")))
            )
    return out


def argo_request(
    spec: ArgoHelm, chart_dir: str, namespace: str, read_values_file: Any
) -> ChartRequest | Skip:
    """Merge an Argo CD Helm source's values in Argo CD's order into a :class:`ChartRequest`."""
    values: dict[str, Any] = {}
    for rel in spec.value_files:
        loaded = read_values_file(rel)
        if loaded is None:
            if spec.missing_ok:
                continue
            return Skip(f"value file `{rel}` is missing or not a YAML mapping", "Fix `valueFiles`.", True)
        values = deep_merge(values, loaded)
    values = deep_merge(values, spec.values)
    for name, value, force_string in spec.parameters:
        values = set_path(values, name, value if force_string else _parse_scalar(value))
    remote = spec.remote
    return ChartRequest(
        chart_dir=chart_dir,
        values=values,
        release=spec.release[:53],
        namespace=namespace or "default",
        crds=spec.crds,
        where=f"chart `{remote.chart}` {remote.version} from {remote.repo_url}"
        if remote
        else f"chart `{chart_dir}`",
        remote=remote,
    )


def chart_references(docs: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """Chart folders and values files of this repository that the HelmReleases among ``docs`` name.

    For change detection: a target that applies such a HelmRelease re-renders when one changes.
    """
    folders: set[str] = set()
    files: set[str] = set()
    for doc in docs:
        if doc.get("kind") == "HelmChart" and str(doc.get("apiVersion", "")).startswith(SOURCE_GROUP):
            template = doc.get("spec") or {}
        elif is_helm_release(doc):
            chart = (doc.get("spec") or {}).get("chart") or {}
            template = chart.get("spec") or {} if isinstance(chart, dict) else {}
        else:
            continue
        if not isinstance(template, dict) or not template.get("chart"):
            continue
        folder = repo_path(str(template["chart"]))
        if folder is not None and "$" not in folder:
            folders.add(folder)
        for f in template.get("valuesFiles") or []:
            rel = repo_path(str(f))
            if rel is not None:
                files.add(rel)
    return folders, files


# ----------------------------------------------------------------------- kustomize helmCharts
@dataclass(frozen=True, slots=True)
class KustomizeChart:
    """One ``helmCharts`` entry of a kustomization, resolved against its folder."""

    name: str
    chart_dir: str
    values_file: str
    additional_values: tuple[str, ...]
    inline: dict[str, Any]
    merge: str
    release: str
    namespace: str
    crds: bool


def kustomize_charts(data: dict[str, Any], rel_dir: str) -> list[KustomizeChart] | str:
    """Resolve the ``helmCharts`` of a kustomization in ``rel_dir``, as kustomize's Helm generator does.

    The chart is ``<chartHome>/<name>`` (``helmGlobals.chartHome``, default ``charts``, relative to the
    kustomization); ``valuesFile`` and ``additionalValuesFiles`` are relative to the kustomization.
    Returns why the entries cannot be rendered instead (a path leaving the repository, a bad shape).
    """
    globals_ = data.get("helmGlobals") or {}
    if not isinstance(globals_, dict):
        return "`helmGlobals` is not a mapping"
    home = repo_path(str(globals_.get("chartHome") or "charts"), rel_dir if rel_dir != "." else "")
    if home is None:
        return "`helmGlobals.chartHome` leaves the repository"
    out = []
    base = rel_dir if rel_dir != "." else ""
    for entry in data.get("helmCharts") or []:
        if not isinstance(entry, dict) or not entry.get("name"):
            return "a `helmCharts` entry has no `name`"
        name = str(entry["name"])
        files = [str(entry["valuesFile"])] if entry.get("valuesFile") else []
        files += [str(f) for f in entry.get("additionalValuesFiles") or []]
        resolved = [repo_path(f, base) for f in files]
        chart_dir = repo_path(name, home)
        if chart_dir is None or any(r is None for r in resolved):
            return f"chart `{name}`: a path leaves the repository"
        inline = entry.get("valuesInline") or {}
        if not isinstance(inline, dict):
            return f"chart `{name}`: `valuesInline` is not a mapping"
        values_files = [r for r in resolved if r is not None]
        out.append(
            KustomizeChart(
                name=name,
                chart_dir=chart_dir,
                values_file=values_files[0] if entry.get("valuesFile") else "",
                additional_values=tuple(values_files[1:] if entry.get("valuesFile") else values_files),
                inline=inline,
                merge=str(entry.get("valuesMerge") or "override"),
                release=str(entry.get("releaseName") or "release-name"),
                namespace=str(entry.get("namespace") or ""),
                crds=bool(entry.get("includeCRDs")),
            )
        )
    return out


def kustomize_request(chart: KustomizeChart, read_values_file: Any) -> ChartRequest | Skip:
    """Values of a kustomize Helm chart: ``valuesFile`` and ``valuesInline`` per ``valuesMerge``
    (``override``: inline wins; ``merge``: the file wins; ``replace``: inline only), then
    ``additionalValuesFiles`` in order."""
    from_file: dict[str, Any] = {}
    for rel in ([chart.values_file] if chart.values_file else []) + list(chart.additional_values):
        loaded = read_values_file(rel)
        if loaded is None:
            message = f"helmCharts `{chart.name}`: values file `{rel}` is missing or not a mapping"
            return Skip(message, "Fix `valuesFile`/`additionalValuesFiles`.", True)
        from_file = deep_merge(from_file, loaded)
    if chart.merge == "replace":
        values = dict(chart.inline)
    elif chart.merge == "merge":
        values = deep_merge(chart.inline, from_file)
    else:
        values = deep_merge(from_file, chart.inline)
    return ChartRequest(
        chart_dir=chart.chart_dir,
        values=values,
        release=chart.release,
        namespace=chart.namespace or "default",
        crds=chart.crds,
        where=f"helmCharts `{chart.name}`",
    )
