"""Build a target whose Flux Kustomization or Argo CD source sets kustomize options.

Like the controllers, the options are written into the kustomization of the path (see
:mod:`bot.domain.render.kustomize_options`) and the real kustomize builds it. Targets render in
parallel and share the tree, so the path is never edited in place: it is copied to a hidden
sibling folder (same parent, so every relative reference, ``../base`` included, resolves as
before), the kustomization there is rewritten, built with the usual safe runner, and the
copy removed.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import uuid
from pathlib import Path

import yaml

from bot.domain.render.fastyaml import load_one
from bot.domain.render.kustomize import KUSTOMIZATION_FILES, KustomizeError, kustomization_file
from bot.domain.render.kustomize_options import (
    OptionError,
    argocd_kustomization,
    flux_kustomization,
    generated_kustomization,
)
from bot.domain.render.overlay import target_options
from bot.domain.render.result import Target
from bot.domain.yamlio import YamlError
from bot.render_runtime.kustomize_runner import run_kustomize


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
    kind, spec = target_options(target)
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
