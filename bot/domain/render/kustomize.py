"""Run the real kustomize safely: scan the kustomization graph first, then build offline.

Nothing from a pull request is executed. Before kustomize runs, every kustomization
reachable from a root is read and refused when it names a remote resource (URL,
``git@``, ``github.com/...``, ``?ref=``), a path that leaves the repository, or a Helm
chart (``helmCharts``). kustomize then runs inside the temporary copy with the load
restrictor on, without exec/alpha plugins or Helm, with no proxy and an empty HOME.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import posixpath
import re
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.domain.model import Finding, Severity
from bot.domain.render.fastyaml import load_one
from bot.domain.render.helm import kustomize_charts
from bot.domain.yamlio import YamlError

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUSTOMIZE_TIMEOUT = 120

_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@|ssh:|github\.com/|gitlab\.com/|bitbucket\.org/)", re.I)

# Fields whose entries are kustomization directories or files.
_RESOURCE_FIELDS = ("resources", "bases", "components", "crds")
# Fields whose entries (or entry["path"]) are files read by kustomize.
_FILE_LIST_FIELDS = ("patchesStrategicMerge", "configurations", "generators", "transformers", "validators")
_PATCH_FIELDS = ("patches", "patchesJson6902", "replacements")
_PATCH_FILE_FIELDS = ("patches", "patchesJson6902")
_GENERATOR_FIELDS = ("configMapGenerator", "secretGenerator")
_FORBIDDEN_FIELDS = {
    "helmChartInflationGenerator": "Use `helmCharts` with the chart vendored under `chartHome`.",
}


class KustomizeNotFound(RuntimeError):
    """Neither ``kustomize`` nor ``kubectl`` is on PATH."""


def is_remote(ref: str) -> bool:
    """Tell whether a kustomization entry names something fetched over the network."""
    ref = ref.strip()
    return bool(_REMOTE.match(ref)) or "?ref=" in ref or "?version=" in ref or "//" in ref.split("?")[0]


def kustomization_file(directory: Path) -> Path | None:
    """Return the kustomization file of ``directory``, or None."""
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


@dataclass(slots=True)
class Closure:
    """What a kustomization root reads: its files (repo-relative) and the problems found."""

    files: set[str] = field(default_factory=set)
    dirs: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    helm_dirs: set[str] = field(default_factory=set)
    """Kustomization folders with ``helmCharts`` whose charts are in the repository."""

    @property
    def refused(self) -> bool:
        return any(f.blocking for f in self.findings)


def _finding(rule: str, path: str, line: int, message: str, hint: str) -> Finding:
    return Finding(rule, Severity.ERROR, path, line, message, hint)


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return 1


class KustomizationScanner:
    """Scan kustomization graphs of one tree; results per directory are memoised."""

    def __init__(self, tree: Path, *, has_links: bool | None = None) -> None:
        """Scan ``tree``; ``has_links`` (whether any entry of the tree is a symbolic link) saves a walk."""
        self.tree = tree.resolve()
        self._memo: dict[str, Closure] = {}
        self._links: bool | None = has_links
        self._kfiles: dict[str, Path | None] = {}
        self._lock = threading.RLock()
        self._tree_str = str(self.tree)
        self.digests: dict[str, str] = {}
        """Content hashes of files of the tree by repo-relative path, filled by the render cache keys."""

    def kfile(self, rel_dir: str) -> Path | None:
        """Return the kustomization file of a repo-relative directory (memoised)."""
        try:
            return self._kfiles[rel_dir]
        except KeyError:
            pass
        found = None
        folder = os.path.join(self._tree_str, rel_dir)
        for name in KUSTOMIZATION_FILES:
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate):
                found = Path(candidate)
                break
        self._kfiles[rel_dir] = found
        return found

    def _has_links(self) -> bool:
        if self._links is None:
            self._links = any(
                (Path(d) / n).is_symlink() for d, dirs, files in os.walk(self.tree) for n in dirs + files
            )
        return self._links

    def _rel(self, path: Path) -> str | None:
        """Return ``path`` relative to the tree, or None when it resolves outside (through links)."""
        try:
            return path.resolve().relative_to(self.tree).as_posix()
        except ValueError:
            return None

    def closure(self, rel_dir: str) -> Closure:
        """Return the closure of the kustomization directory ``rel_dir`` (repo-relative)."""
        rel_dir = posixpath.normpath(rel_dir) if rel_dir not in ("", ".") else "."
        with self._lock:  # one scan at a time: a half-filled closure must never be seen
            if rel_dir in self._memo:
                return self._memo[rel_dir]
            result = Closure()
            self._memo[rel_dir] = result  # a cycle sees an empty closure instead of recursing forever
            self._scan_dir(rel_dir, result)
            return result

    def _scan_dir(self, rel_dir: str, result: Closure) -> None:
        result.dirs.add(rel_dir)
        kfile = self.kfile(rel_dir)
        if kfile is None:
            return
        if not self._has_links() and not (rel_dir == ".." or rel_dir.startswith("../")):
            krel = kfile.name if rel_dir == "." else f"{rel_dir}/{kfile.name}"  # what resolving gives
        else:
            krel = self._rel(kfile) or f"{rel_dir}/kustomization.yaml"
        result.files.add(krel)
        text = kfile.read_text(encoding="utf-8", errors="replace")
        try:
            data = _parse_cached(text, krel)
        except YamlError as exc:
            result.findings.append(exc.finding)
            return
        if not isinstance(data, dict):
            result.findings.append(
                _finding("render.kustomize", krel, 1, "the kustomization is not a mapping", "Fix the file.")
            )
            return
        for key, why in _FORBIDDEN_FIELDS.items():
            if key in data:
                result.findings.append(
                    _finding(
                        "render.helm",
                        krel,
                        _line_of(text, f"{key}:"),
                        f"`{key}` in a kustomization is refused. {why}",
                        "Use a Flux HelmRelease (diffed as its values) or commit the rendered chart output.",
                    )
                )
        if "helmCharts" in data:
            self._helm_charts(rel_dir, krel, text, data, result)
        for entry in self._entries(data):
            self._check_entry(rel_dir, krel, text, entry, result)

    def _helm_charts(self, rel_dir: str, krel: str, text: str, data: dict[str, Any], result: Closure) -> None:
        """Accept ``helmCharts`` whose charts are vendored in the repository (rendered by the embedded
        Helm engine, see :mod:`bot.render_runtime.helm_render`); refuse the others."""
        line = _line_of(text, "helmCharts:")
        charts = kustomize_charts(data, rel_dir)
        if isinstance(charts, str):
            result.findings.append(_finding("render.helm", krel, line, f"`helmCharts` refused: {charts}", ""))
            return
        tree = self._tree_str
        missing = [c for c in charts if not os.path.isfile(os.path.join(tree, c.chart_dir, "Chart.yaml"))]
        if missing:
            result.findings.append(
                _finding(
                    "render.helm",
                    krel,
                    line,
                    f"`helmCharts` not rendered: chart `{missing[0].name}` is not in "
                    f"`{missing[0].chart_dir}`; the bot never downloads charts",
                    "Vendor the chart into the chart home (`helm pull --untar --untardir <chartHome>`).",
                )
            )
            return
        result.helm_dirs.add(rel_dir)
        for chart in charts:
            result.files.update(chart.additional_values)
            if chart.values_file:
                result.files.add(chart.values_file)
            for dirpath, dirs, files in os.walk(os.path.join(self._tree_str, chart.chart_dir)):
                dirs.sort()
                rel = os.path.relpath(dirpath, self._tree_str).replace(os.sep, "/")
                result.files.update(f"{rel}/{name}" for name in files)

    @staticmethod
    def _entries(data: dict[str, Any]) -> Iterable[tuple[str, str]]:
        """Yield (kind, reference) for every path-like entry: kind is 'dir-or-file' or 'file'."""
        for key in _RESOURCE_FIELDS:
            for item in data.get(key) or []:
                if isinstance(item, str):
                    yield "dir-or-file", item
        for key in _FILE_LIST_FIELDS:
            for item in data.get(key) or []:
                if isinstance(item, str):
                    yield "file", item
        for key in _PATCH_FIELDS:
            for item in data.get(key) or []:
                if isinstance(item, dict) and isinstance(item.get("path"), str):
                    yield "file", item["path"]
        for key in _GENERATOR_FIELDS:
            for gen in data.get(key) or []:
                if not isinstance(gen, dict):
                    continue
                for sub in ("files", "envs"):
                    for item in gen.get(sub) or []:
                        if isinstance(item, str):
                            yield "file", item.split("=", 1)[-1]
                if isinstance(gen.get("env"), str):
                    yield "file", gen["env"]
        openapi = data.get("openapi")
        if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
            yield "file", openapi["path"]

    def _check_entry(
        self, rel_dir: str, krel: str, text: str, entry: tuple[str, str], result: Closure
    ) -> None:
        kind, ref = entry
        line = _line_of(text, ref)
        if is_remote(ref):
            result.findings.append(
                _finding(
                    "render.remote",
                    krel,
                    line,
                    f"remote reference `{ref}` refused: the bot renders offline and never fetches bases "
                    "over the network.",
                    "Vendor the remote base into this repository and reference it by a relative path.",
                )
            )
            return
        if posixpath.isabs(ref):
            result.findings.append(
                _finding(
                    "render.path",
                    krel,
                    line,
                    f"absolute path `{ref}` refused",
                    "Use a path relative to the kustomization's directory.",
                )
            )
            return
        joined = posixpath.normpath(posixpath.join(rel_dir, ref))
        if joined == ".." or joined.startswith("../"):
            self._leaves(krel, line, ref, result)
            return
        full = os.path.join(self._tree_str, joined)
        try:
            is_dir = stat.S_ISDIR(os.stat(full).st_mode)
        except OSError:
            # kustomize reports the missing file with its own message; record the dependency anyway.
            result.files.add(joined)
            return
        real = joined
        if self._has_links():
            resolved = self._rel(Path(full))
            if resolved is None:
                self._leaves(krel, line, ref, result)
                return
            real = resolved
        if kind == "dir-or-file" and is_dir:
            sub = self.closure(real)
            result.files |= sub.files
            result.dirs |= sub.dirs
            result.helm_dirs |= sub.helm_dirs
            result.findings.extend(f for f in sub.findings if f not in result.findings)
        else:
            result.files.add(real)

    @staticmethod
    def _leaves(krel: str, line: int, ref: str, result: Closure) -> None:
        result.findings.append(
            _finding(
                "render.path",
                krel,
                line,
                f"path `{ref}` leaves the repository",
                "Keep every resource, patch and generator file inside the repository.",
            )
        )


_PARSED: dict[tuple[str, str], Any] = {}
_PARSED_LOCK = threading.Lock()


def forget_parsed_kustomizations() -> None:
    """Empty the memo of parsed kustomizations."""
    with _PARSED_LOCK:
        _PARSED.clear()


def _parse_cached(text: str, path: str) -> Any:
    """Parse a kustomization, memoised by path and content (base and head share most files)."""
    key = (path, hashlib.sha256(text.encode()).hexdigest())
    with _PARSED_LOCK:
        if key in _PARSED:
            return copy.deepcopy(_PARSED[key])
    data = load_one(text, path)
    with _PARSED_LOCK:
        if len(_PARSED) > 20_000:
            _PARSED.clear()
        _PARSED[key] = data
    return copy.deepcopy(data)


class KustomizeError(RuntimeError):
    """kustomize refused the root; the message is kustomize's own error text."""


# kubectl logs through klog: `E1121 08:33:31.394852   15861 run.go:72] "command failed" err="..."`.
_KLOG_HEADER = re.compile(r"^[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+ [\w.-]+:\d+\] ")
_KLOG_FAILED = re.compile(r'^"command failed" err=(".*")$')
_KLOG_BLOCK = re.compile(r'^"command failed" err=<$')


def clean_error(line: str) -> str:
    """Return kustomize's error without kubectl's log header (time, process id, source line).

    The header differs on every run, which made the same error look new each time (and the
    filter that drops problems already present at base never matched). ``kustomize`` itself
    prints ``Error: ...``, which is kept as it is.
    """
    line = _KLOG_HEADER.sub("", line, count=1)
    quoted = _KLOG_FAILED.match(line)
    if quoted:
        try:
            text = json.loads(quoted.group(1))
        except ValueError:
            return line
        return text if isinstance(text, str) else line
    return line


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def resolve_ref(folder: str, ref: str) -> str | None:
    """Return ``ref`` relative to ``folder`` as a repository path; ``None`` when it leaves the tree."""
    if "://" in ref or ref.startswith("/"):
        return None
    path = posixpath.normpath(posixpath.join(folder, ref))
    return None if path == ".." or path.startswith("../") else path


def kustomization_patch_refs(data: dict[str, Any]) -> list[str]:
    """Return the patch file references of one kustomization (or Component), as written."""
    refs: list[str] = []
    for entry in _list(data.get("patchesStrategicMerge")):
        # An entry is a file path, or (kustomize allows it) an inline patch: inline ones span lines.
        inline = not isinstance(entry, str) or "\n" in entry or entry.lstrip().startswith(("{", "apiVersion"))
        if not inline:
            refs.append(entry.strip())
    for name in _PATCH_FILE_FIELDS:
        for entry in _list(data.get(name)):
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                refs.append(entry["path"])
    return refs


def clean_stderr(text: str) -> str:
    """Return kustomize's whole error message from its stderr, without kubectl's log headers.

    klog writes a one-line error as ``err="..."`` (JSON-quoted) and a multi-line one as
    ``err=<`` followed by tab-indented lines and a closing `` >`` line; both are unwrapped,
    so a message is never cut to its last line. Other lines are kept (headers removed); kustomize's
    ``# Warning:`` lines (deprecations) go after the error, so the message leads with what failed.
    """
    out: list[str] = []
    warnings: list[str] = []
    block: list[str] | None = None
    for raw in text.strip().splitlines():
        if block is not None:
            if raw.strip() == ">":
                out.append("\n".join(block).strip())
                block = None
            else:
                block.append(raw[1:] if raw.startswith("\t") else raw)
            continue
        line = _KLOG_HEADER.sub("", raw, count=1)
        if _KLOG_BLOCK.match(line):
            block = []
            continue
        cleaned = clean_error(line)
        if cleaned.startswith("# Warning:"):
            warnings.append(cleaned)
        elif cleaned.strip():
            out.append(cleaned)
    if block:  # no closing line: keep what came
        out.append("\n".join(block).strip())
    return "\n".join(out + warnings).strip()
