"""Build a target whose Flux Kustomization or Argo CD source sets kustomize options.

Like the controllers, the options are written into the kustomization of the path (see
:mod:`bot.domain.render.kustomize_options`) and the real kustomize builds it. Targets render in
parallel and share the tree, so the path is never edited in place: it is copied to a hidden
sibling folder (same parent, so every relative reference, ``../base`` included, resolves as
before), the kustomization there is rewritten, built with the usual safe runner, and the
copy removed.
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import shutil
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bot.domain.render.fastyaml import load_one
from bot.domain.render.kustomize import KUSTOMIZATION_FILES, KustomizeError, kustomization_file, run_kustomize
from bot.domain.render.kustomize_options import (
    ARGOCD_FIELDS,
    FLUX_FIELDS,
    OptionError,
    apply_common_metadata,
    argocd_kustomization,
    flux_kustomization,
    generated_kustomization,
    option_paths,
    resolve,
)
from bot.domain.render.result import Target
from bot.domain.yamlio import YamlError

__all__ = [
    "OptionError",
    "build_options",
    "common_metadata",
    "needs_build",
    "needs_build_spec",
    "option_inputs",
    "options_json",
]


def options_json(kind: str, spec: dict[str, Any], common: Any = None) -> str:
    """The ``Target.options`` of a Flux spec (``kind="flux"``) or an Argo CD ``source.kustomize``."""
    fields = FLUX_FIELDS if kind == "flux" else ARGOCD_FIELDS
    keep = {k: spec[k] for k in fields if spec.get(k) not in (None, "", [], {})}
    if kind == "flux" and keep and spec.get("targetNamespace"):
        keep["targetNamespace"] = spec["targetNamespace"]
    if keep.get("components") and spec.get("ignoreMissingComponents"):
        keep["ignoreMissingComponents"] = True
    if kind == "argocd":
        keep.update({k: spec[k] for k in spec if k.startswith(("force", "label")) and spec[k]})
    if isinstance(common, dict) and (common.get("labels") or common.get("annotations")):
        keep["commonMetadata"] = common
    return json.dumps({"kind": kind, "spec": keep}, sort_keys=True) if keep else ""


def _options(target: Target) -> tuple[str, dict[str, Any]]:
    kind, spec = _parsed(target.options)
    return kind, copy.deepcopy(spec)


@lru_cache(maxsize=1024)
def _parsed(options: str) -> tuple[str, dict[str, Any]]:
    data = json.loads(options)
    return str(data["kind"]), dict(data["spec"])


def needs_build(target: Target) -> bool:
    """Tell whether the target's options change what kustomize builds (commonMetadata does not)."""
    return needs_build_spec(target.options)


def needs_build_spec(options: str) -> bool:
    """:func:`needs_build` for an ``options`` string."""
    return bool(options) and any(k != "commonMetadata" for k in _parsed(options)[1])


def option_inputs(target: Target) -> list[str]:
    """Repository paths the options read (components, patch files); raises :class:`OptionError`."""
    if not target.options:
        return []
    kind, spec = _options(target)
    return [resolve(target.path, p) for p in option_paths(kind, spec)]


def common_metadata(target: Target, obj: dict[str, Any]) -> dict[str, Any]:
    """Apply Flux ``commonMetadata`` to one rendered object (after variables, as Flux does)."""
    if not target.options:
        return obj
    _kind, spec = _options(target)
    common = spec.get("commonMetadata")
    return apply_common_metadata(obj, common) if isinstance(common, dict) else obj


def _manifests(folder: Path) -> tuple[list[str], list[str]]:
    """What Flux's generated kustomization lists: YAML files, and subfolders holding a kustomization."""
    files: list[str] = []
    subdirs: list[str] = []
    for dirpath, dirs, names in os.walk(folder):
        here = Path(dirpath)
        rel = here.relative_to(folder).as_posix()
        if here != folder and kustomization_file(here) is not None:
            subdirs.append(rel)
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.endswith((".yaml", ".yml")) and not (here / name).is_symlink():
                files.append(name if rel == "." else f"{rel}/{name}")
    return files, subdirs


def build_options(tree: Path, target: Target) -> str:
    """Build ``target`` with its options written into its kustomization; return kustomize's output.

    Raises :class:`KustomizeError` (kustomize's message, naming the target's path) or
    :class:`OptionError` (options that cannot be applied).
    """
    kind, spec = _options(target)
    if target.path in ("", "."):
        raise OptionError("options on the repository root are not applied (no folder to copy it into)")
    parent = posixpath.dirname(target.path)
    scratch_rel = posixpath.join(parent, f".gitops-bot-options-{uuid.uuid4().hex[:12]}")
    scratch = tree / scratch_rel
    shutil.copytree(tree / target.path, scratch, symlinks=True)
    try:
        kfile = kustomization_file(scratch)
        if kfile is not None:
            try:
                base = load_one(kfile.read_text(encoding="utf-8"), target.path)
            except YamlError as exc:
                raise KustomizeError(f"{target.path}: the kustomization is not valid YAML: {exc}") from exc
            if not isinstance(base, dict):
                raise KustomizeError(f"{target.path}: the kustomization is not a map")
        else:
            base = generated_kustomization(*_manifests(scratch))
        for name in KUSTOMIZATION_FILES:
            (scratch / name).unlink(missing_ok=True)
        if spec.pop("ignoreMissingComponents", False):  # Flux and Argo CD skip absent components
            folder = tree / target.path
            spec["components"] = [c for c in spec.get("components") or [] if (folder / c).exists()]
        merged = flux_kustomization(base, spec) if kind == "flux" else argocd_kustomization(base, spec)
        (scratch / "kustomization.yaml").write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
        try:
            return run_kustomize(tree, scratch_rel)
        except KustomizeError as exc:
            raise KustomizeError(str(exc).replace(scratch_rel, target.path)) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
