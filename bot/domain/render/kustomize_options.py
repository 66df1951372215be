"""Kustomize options set on a Flux Kustomization or an Argo CD source, applied as the controllers do.

Both controllers write the options into the kustomization of the path and build it with
kustomize; so does gitops-bot (:func:`flux_kustomization`, :func:`argocd_kustomization`
return that kustomization; the engine builds it with the real kustomize in a scratch copy
of the path):

- Flux kustomize-controller (fluxcd/pkg ``kustomize.Generator``): generates a kustomization
  listing the manifests when the path has none; sets ``namespace`` from ``targetNamespace``,
  ``namePrefix``/``nameSuffix``; appends ``patches`` (inline, with targets),
  ``patchesStrategicMerge``, ``patchesJson6902`` and local ``components``; merges ``images``
  by name (a tag or digest replaces both). ``commonMetadata`` is applied after the build to
  every object's labels and annotations (:func:`apply_common_metadata`, as ``SetCommonMetadata``).
- Argo CD repo-server (``kustomize edit`` on a temporary checkout): ``images``
  (``name=newName:tag@digest`` strings), ``namePrefix``, ``nameSuffix``, ``commonLabels``
  (``labelWithoutSelector`` keeps them out of selectors), ``commonAnnotations``
  (``forceCommon*`` overrides keys the kustomization already has), ``namespace``,
  ``replicas``, ``patches`` and ``components``.

Paths in options (components, patch files) must stay inside the repository and be local:
:func:`option_paths` lists them so the caller checks and follows them.
"""

from __future__ import annotations

import copy
import posixpath
import re
from typing import Any

OptionError = ValueError

FLUX_FIELDS = (
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "images",
    "components",
    "namePrefix",
    "nameSuffix",
)
ARGOCD_FIELDS = (
    "images",
    "namePrefix",
    "nameSuffix",
    "commonLabels",
    "commonAnnotations",
    "namespace",
    "replicas",
    "patches",
    "components",
)


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise OptionError(f"`{what}` must be a list of strings")
    return list(value)


def _maps(value: Any, what: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise OptionError(f"`{what}` must be a list of objects")
    return [copy.deepcopy(v) for v in value]


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OptionError(f"`{what}` must be a map of strings")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _local(path: str, what: str) -> str:
    if not path or path.startswith("/") or "://" in path or path.startswith(("git@", "github.com/")):
        raise OptionError(f"{what} `{path}` must be a local, relative path")
    return path


def _merge_image(images: list[dict[str, Any]], image: dict[str, Any]) -> None:
    """Flux: an image of the same name is updated field by field; a tag or digest replaces both."""
    for existing in images:
        if existing.get("name") == image.get("name"):
            if image.get("newName"):
                existing["newName"] = image["newName"]
            if image.get("newTag") or image.get("digest"):
                existing.pop("newTag", None)
                existing.pop("digest", None)
                existing.update({k: image[k] for k in ("newTag", "digest") if image.get(k)})
            return
    images.append({k: v for k, v in image.items() if k in ("name", "newName", "newTag", "digest") and v})


def flux_kustomization(kustomization: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Return ``kustomization`` with a Flux Kustomization's options written in, as Flux does."""
    kus = copy.deepcopy(kustomization)
    if isinstance(spec.get("targetNamespace"), str) and spec["targetNamespace"]:
        kus["namespace"] = spec["targetNamespace"]
    for field in ("namePrefix", "nameSuffix"):
        if isinstance(spec.get(field), str):
            kus[field] = spec[field]
    for patch in _maps(spec.get("patches"), "patches"):
        if not isinstance(patch.get("patch"), str):
            raise OptionError("each entry of `patches` needs an inline `patch`")
        entry: dict[str, Any] = {"patch": patch["patch"]}
        if isinstance(patch.get("target"), dict):
            entry["target"] = patch["target"]
        kus.setdefault("patches", []).append(entry)
    for component in _strings(spec.get("components"), "components"):
        kus.setdefault("components", []).append(_local(component, "component"))
    for patch in _maps(spec.get("patchesStrategicMerge"), "patchesStrategicMerge"):
        kus.setdefault("patchesStrategicMerge", []).append(patch)
    for patch in _maps(spec.get("patchesJson6902"), "patchesJson6902"):
        kus.setdefault("patchesJson6902", []).append(patch)
    images = kus.setdefault("images", [])
    for image in _maps(spec.get("images"), "images"):
        _merge_image(images, image)
    if not images:
        del kus["images"]
    return kus


_IMAGE = re.compile(r"^(?P<name>[^=]+?)(?:=(?P<new>.+))?$")


def _argo_image(spec: str) -> dict[str, str]:
    """Read an Argo CD image override (``kustomize edit set image`` syntax)."""
    m = _IMAGE.match(spec.strip())
    if not m:
        raise OptionError(f"image `{spec}` is not `name[=newName][:tag][@digest]`")
    name, new = m.group("name"), m.group("new")
    target = new if new is not None else name
    image: dict[str, str] = {}
    ref, _, digest = target.partition("@")
    # a tag follows the last colon after the last slash (a registry may have a port)
    head, sep, tag = ref.rpartition(":")
    if sep and "/" not in tag:
        ref = head
    else:
        tag = ""
    if new is None:
        name = ref
    elif ref != name:
        image["newName"] = ref
    image = {"name": name, **image}
    if tag:
        image["newTag"] = tag
    if digest:
        image["digest"] = digest
    return image


def _set_image(images: list[dict[str, Any]], image: dict[str, str]) -> None:
    """``kustomize edit set image``: the entry of that name is replaced, or added."""
    for i, existing in enumerate(images):
        if existing.get("name") == image["name"]:
            images[i] = image
            return
    images.append(image)


def argocd_kustomization(kustomization: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    """Return ``kustomization`` with an Argo CD source's ``kustomize`` options written in."""
    kus = copy.deepcopy(kustomization)
    for field in ("namePrefix", "nameSuffix", "namespace"):
        if isinstance(opts.get(field), str) and opts[field]:
            kus[field] = opts[field]
    images = kus.get("images") or []
    for spec in _strings(opts.get("images"), "kustomize.images"):
        _set_image(images, _argo_image(spec))
    if images:
        kus["images"] = images
    labels = _str_map(opts.get("commonLabels"), "kustomize.commonLabels")
    if labels:
        if opts.get("labelWithoutSelector"):
            entry: dict[str, Any] = {"pairs": labels, "includeSelectors": False}
            if opts.get("labelIncludeTemplates"):
                entry["includeTemplates"] = True
            kus.setdefault("labels", []).append(entry)
        else:
            current = dict(kus.get("commonLabels") or {})
            force = bool(opts.get("forceCommonLabels"))
            kus["commonLabels"] = {**labels, **current} if not force else {**current, **labels}
    annotations = _str_map(opts.get("commonAnnotations"), "kustomize.commonAnnotations")
    if annotations:
        current = dict(kus.get("commonAnnotations") or {})
        force = bool(opts.get("forceCommonAnnotations"))
        kus["commonAnnotations"] = {**annotations, **current} if not force else {**current, **annotations}
    for replica in _maps(opts.get("replicas"), "kustomize.replicas"):
        name, count = replica.get("name"), replica.get("count")
        if not isinstance(name, str) or isinstance(count, bool) or not isinstance(count, int | str):
            raise OptionError("each `kustomize.replicas` entry needs a `name` and a `count`")
        entries = [r for r in kus.get("replicas") or [] if r.get("name") != name]
        kus["replicas"] = [*entries, {"name": name, "count": int(count)}]
    for patch in _maps(opts.get("patches"), "kustomize.patches"):
        if "path" in patch:
            _local(str(patch["path"]), "patch file")
        kus.setdefault("patches", []).append(patch)
    for component in _strings(opts.get("components"), "kustomize.components"):
        kus.setdefault("components", []).append(_local(component, "component"))
    return kus


def option_paths(kind: str, options: dict[str, Any]) -> list[str]:
    """Paths an option set reads, relative to the kustomization's folder (components, patch files)."""
    paths = list(_strings(options.get("components"), "components"))
    if kind == "argocd":
        paths += [str(p["path"]) for p in _maps(options.get("patches"), "patches") if "path" in p]
    return paths


def resolve(folder: str, rel: str) -> str:
    """Resolve ``rel`` against the repository folder ``folder``; raise if it leaves the repository."""
    joined = posixpath.normpath(posixpath.join(folder, rel))
    if joined == ".." or joined.startswith("../") or joined.startswith("/"):
        raise OptionError(f"`{rel}` leaves the repository")
    return joined


def generated_kustomization(manifests: list[str], subdirs: list[str]) -> dict[str, Any]:
    """The kustomization Flux (and Argo CD) write for a folder that has none: every manifest."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(manifests + subdirs),
    }


def apply_common_metadata(obj: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    """Flux ``commonMetadata``: labels and annotations set on the object, overriding its own keys."""
    labels = _str_map(common.get("labels"), "commonMetadata.labels")
    annotations = _str_map(common.get("annotations"), "commonMetadata.annotations")
    if not labels and not annotations:
        return obj
    meta = dict(obj.get("metadata") or {})
    if labels:
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
    if annotations:
        meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
    return {**obj, "metadata": meta}
