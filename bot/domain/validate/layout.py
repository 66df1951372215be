"""Which repository files are not whole objects: kustomize patches and Helm chart templates.

A patch file (``patches``, ``patchesStrategicMerge``, ``patchesJson6902`` in a
``kustomization.yaml`` or a kustomize ``Component``, or an Argo CD Application's
``spec.source(s).kustomize.patches``) holds a fragment of an object: it is judged through
the rendered result, never validated as a whole object. Which files are patches is read from
every file that references them, never guessed from file names.

A folder holding ``Chart.yaml`` is a Helm chart: the files under its ``templates/`` are Go
templates, not YAML (the Helm engine renders them).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bot.domain.model import RenderedObject
from bot.domain.render.kustomize import kustomization_patch_refs
from bot.domain.render.kustomize import resolve_ref as _resolve
from bot.domain.validate.base import Doc, TreeReader, as_dict, as_list, iter_yaml_files, parse_docs

KUSTOMIZATION_NAMES = frozenset({"kustomization.yaml", "kustomization.yml"})
_APPLICATION = re.compile(r"^kind:\s*['\"]?Application['\"]?\s*$", re.MULTILINE)


def application_patch_refs(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (source path, patch path) pairs of an Argo CD Application's kustomize patches."""
    spec = as_dict(data.get("spec"))
    sources = [as_dict(spec.get("source")), *(as_dict(s) for s in as_list(spec.get("sources")))]
    out: list[tuple[str, str]] = []
    for source in sources:
        folder = source.get("path")
        if not isinstance(folder, str):
            continue
        for entry in as_list(as_dict(source.get("kustomize")).get("patches")):
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                out.append((folder.strip("/") or ".", entry["path"]))
    return out


def wants_patches(rel: str, text: str) -> bool:
    """Return whether ``rel`` may reference patch files (a cheap text filter before parsing)."""
    if posixpath.basename(rel) in KUSTOMIZATION_NAMES:
        return "patches" in text or "patchesStrategicMerge" in text or "patchesJson6902" in text
    return "patches" in text and bool(_APPLICATION.search(text))


def add_patch_refs(patches: dict[str, str], rel: str, docs: list[Doc]) -> None:
    """Record in ``patches`` (patch path -> referrer) the patch files that ``rel`` references."""
    folder = posixpath.dirname(rel) or "."
    is_kustomization = posixpath.basename(rel) in KUSTOMIZATION_NAMES
    for doc in docs:
        data = doc.data
        if not isinstance(data, dict):
            continue
        if is_kustomization:
            paths = [_resolve(folder, ref) for ref in kustomization_patch_refs(data)]
        elif doc.kind == "Application" and doc.group == "argoproj.io":
            paths = [_resolve(source, ref) for source, ref in application_patch_refs(data)]
        else:
            continue
        for path in paths:
            if path:
                patches.setdefault(path, rel)


def listed_as_resources(root: Path, candidates: set[str]) -> set[str]:
    """Return the ``candidates`` that some kustomization also lists under ``resources``.

    Such a file is a whole object where it is a resource, so it is validated whole even if
    another kustomization uses it as a patch. Only kustomization files that mention a
    candidate's file name are parsed.
    """
    if not candidates:
        return set()
    names = {posixpath.basename(c) for c in candidates}
    reader = TreeReader(root)
    found: set[str] = set()
    for rel in iter_yaml_files(root):
        if posixpath.basename(rel) not in KUSTOMIZATION_NAMES:
            continue
        text = reader.read(rel) or ""
        if not any(name in text for name in names):
            continue
        folder = posixpath.dirname(rel) or "."
        for doc in parse_docs(text, rel)[0]:
            for ref in as_list(as_dict(doc.data).get("resources")):
                path = _resolve(folder, ref) if isinstance(ref, str) else None
                if path in candidates:
                    found.add(path)
    return found


def patched_objects(
    patch: dict[str, Any], rendered: Sequence[RenderedObject]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (target, object) for each distinct rendered object that ``patch`` names.

    Matched on kind, API group, name, and namespace when the patch gives one.
    """
    meta = as_dict(patch.get("metadata"))
    kind, name, ns = patch.get("kind"), meta.get("name"), meta.get("namespace")
    group = str(patch.get("apiVersion") or "").rpartition("/")[0]
    seen: set[str] = set()
    for item in rendered:
        obj = item.obj
        got = as_dict(obj.get("metadata"))
        if obj.get("kind") != kind or got.get("name") != name:
            continue
        if ns and got.get("namespace") not in (ns, None):
            continue
        if str(obj.get("apiVersion") or "").rpartition("/")[0] != group:
            continue
        key = json.dumps(obj, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            yield item.target or item.source_path, obj


def chart_root(root: Path, rel: str) -> str | None:
    """Return the Helm chart folder (holding ``Chart.yaml``) that ``rel`` is a template of, else ``None``.

    A file is a template when it lies under ``<chart>/templates/``. Sub-charts (``charts/x``)
    are charts of their own and are found the same way.
    """
    parts = rel.split("/")
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "templates":
            folder = "/".join(parts[:i])
            if any((root / folder / name).is_file() for name in ("Chart.yaml", "Chart.yml")):
                return folder or "."
    return None
