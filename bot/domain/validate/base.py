"""What every validation rule works on: YAML documents with positions, and the shared context."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from bot.domain.model import CheckInput, Finding, Severity
from bot.domain.render import fastyaml
from bot.domain.validate.eks import EksCatalog
from bot.domain.yamlio import YamlError, line_of_path, load_documents, to_plain

YAML_SUFFIXES = (".yaml", ".yml")
_TRAILING_TABS = re.compile(r"[ \t]*\t[ \t]*$", re.MULTILINE)
MAX_TEXT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Doc:
    """One YAML document of a repository file: plain ``data`` plus the ruamel ``node`` for lines."""

    path: str
    index: int
    line: int
    node: Any
    data: Any
    prefix: tuple[str | int, ...] = ()

    @property
    def api_version(self) -> str:
        return str(self.data.get("apiVersion") or "") if isinstance(self.data, dict) else ""

    @property
    def kind(self) -> str:
        return str(self.data.get("kind") or "") if isinstance(self.data, dict) else ""

    @property
    def group(self) -> str:
        return self.api_version.split("/", 1)[0] if "/" in self.api_version else ""

    @property
    def version(self) -> str:
        return self.api_version.rsplit("/", 1)[-1]

    @property
    def name(self) -> str:
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        return str(meta.get("name") or "") if isinstance(meta, dict) else ""

    def line_at(self, path: Sequence[str | int]) -> int:
        """Return the line of ``path`` inside this document (the deepest part that exists)."""
        return line_of_path(self.node, list(path), self.line)

    def finding(
        self,
        rule: str,
        severity: Severity,
        path: Sequence[str | int],
        message: str,
        hint: str,
    ) -> Finding:
        """Return a finding on the line of ``path`` in this document."""
        return Finding(rule, severity, self.path, self.line_at(path), message, hint)

    def sub(self, path: tuple[str | int, ...]) -> Doc | None:
        """Return the embedded document at ``path`` (e.g. a kro resource template), or ``None``."""
        node: Any = self.node
        data: Any = self.data
        for part in path:
            try:
                node = node[part]
                data = data[part]
            except (KeyError, IndexError, TypeError):
                return None
        if not isinstance(data, dict):
            return None
        return Doc(self.path, self.index, line_of_path(self.node, list(path), self.line), node, data, path)


def as_dict(value: Any) -> dict[str, Any]:
    """Return ``value`` if it is a mapping, else ``{}`` (repository YAML may have any shape)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """Return ``value`` if it is a list, else ``[]``."""
    return value if isinstance(value, list) else []


class TreeReader:
    """Reads repository files under one root, resolving each folder's real path once.

    A fleet has thousands of files in far fewer folders. Create one per pass over a tree:
    the folder resolutions are kept only as long as the reader, so a tree that changes
    later is never judged by what its folders were.
    """

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self._folders: dict[str, str] = {}

    def _real_folder(self, folder: str) -> str:
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = os.path.realpath(folder)
        return real

    def _inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root + os.sep)

    def read(self, rel: str) -> str | None:
        """Return the text of ``rel``; ``None`` when missing, a symlink out, too big or binary.

        The file's folder must lie inside the root, and a symlinked file must point inside it.
        """
        folder, name = os.path.split(os.path.join(self.root, rel))
        real_folder = self._real_folder(folder)
        if not self._inside(real_folder):
            return None
        resolved = os.path.join(real_folder, name)
        if os.path.islink(resolved):
            resolved = os.path.realpath(resolved)
            if not resolved.startswith(self.root + os.sep):
                return None
        try:
            with open(resolved, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    return None
                raw = fh.read(MAX_TEXT_BYTES + 1)
        except OSError:
            return None
        if len(raw) > MAX_TEXT_BYTES or b"\x00" in raw[:8192]:
            return None
        return raw.decode("utf-8", errors="replace")


def unreadable(root: Path, rel: str) -> list[Finding]:
    """Return the finding for a file :meth:`TreeReader.read` refused but that is there: fail closed.

    A file over :data:`MAX_TEXT_BYTES` (or a binary file named ``.yaml``) cannot be checked for
    anything, secrets included, so it blocks at its own path. Missing files and links out of
    the repository are not findings here (deleted, or refused where they are rendered).
    """
    path = Path(os.path.realpath(os.path.join(root, rel)))
    if not path.is_relative_to(os.path.realpath(root)):
        return []
    try:
        info = path.stat()
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError:
        return []
    if not stat.S_ISREG(info.st_mode):
        return []
    limit = f"{MAX_TEXT_BYTES // (1024 * 1024)} MiB"
    if info.st_size > MAX_TEXT_BYTES:
        return [
            Finding(
                "files.too-large",
                Severity.ERROR,
                rel,
                1,
                f"file is {info.st_size / (1024 * 1024):.1f} MiB, over the {limit} gitops-bot checks; "
                "nothing in it was validated, rendered or scanned for secrets",
                f"Split it into files under {limit}, or keep it out of the GitOps repository.",
            )
        ]
    if b"\x00" in head and rel.endswith(YAML_SUFFIXES):
        return [
            Finding(
                "yaml.syntax",
                Severity.ERROR,
                rel,
                1,
                "file is binary, not YAML; nothing in it was validated",
                "Keep binary files out of manifest folders, or give them another extension.",
            )
        ]
    return []


def read_text(root: Path, rel: str) -> str | None:
    """Return the text of ``rel`` under ``root`` (see :meth:`TreeReader.read`); for single reads."""
    return TreeReader(root).read(rel)


def blob_id(text: str) -> str:
    """Return the git blob id of ``text`` (UTF-8): the key of the parse cache."""
    raw = text.encode("utf-8", errors="replace")
    return hashlib.sha1(b"blob %d\0" % len(raw) + raw, usedforsecurity=False).hexdigest()


_Parsed = tuple[list[tuple[int, int, Any, Any]], list[Finding]]
MEMO_PARSE_BYTES = 64 * 1024 * 1024
"""Bound of the parse cache, in bytes of parsed text (the oldest entries go first)."""
_PARSED: OrderedDict[tuple[str, str], tuple[int, _Parsed]] = OrderedDict()
_PARSED_SIZE = [0]
_PARSED_LOCK = threading.Lock()


def _memo_parse(mode: str, text: str, rel: str, parse: Any) -> _Parsed:
    """Parse ``text`` once per distinct content (git blob id) and ``mode``, for every path and revision.

    The base and the head of a check, the validation passes over the head tree, and later
    events all read the same blobs: each is parsed once while it stays in the bounded cache.
    Cached documents are shared and never modified by the rules (they only read).
    """
    key = (mode, blob_id(text))
    with _PARSED_LOCK:
        hit = _PARSED.get(key)
        if hit is not None:
            _PARSED.move_to_end(key)
            return hit[1]
    parsed: _Parsed = parse(text, rel)
    size = len(text)
    with _PARSED_LOCK:
        if key not in _PARSED and size <= MEMO_PARSE_BYTES:
            _PARSED[key] = (size, parsed)
            _PARSED_SIZE[0] += size
            while _PARSED_SIZE[0] > MEMO_PARSE_BYTES:
                _old, (old_size, _p) = _PARSED.popitem(last=False)
                _PARSED_SIZE[0] -= old_size
    return parsed


def forget_parses() -> None:
    """Empty the parse cache (so a benchmark's cold run starts as a fresh process)."""
    with _PARSED_LOCK:
        _PARSED.clear()
        _PARSED_SIZE[0] = 0


_ENVSUBST = re.compile(r"\$\{[A-Z_][A-Z0-9_]*\}")
"""An envsubst placeholder (``${VPC_ID}``): the file may be a template, YAML only once filled in."""


def syntax_problem(finding: Finding, text: str) -> Finding:
    """A YAML syntax error; a notice when the file holds envsubst placeholders (it may not be YAML yet)."""
    if finding.rule != "yaml.syntax" or not _ENVSUBST.search(text):
        return finding
    return replace(
        finding,
        severity=Severity.NOTICE,
        message=f"{finding.message}; the file holds ${{VAR}} placeholders, so it may be a template "
        "filled in (envsubst) before it is applied: not validated",
        hint="Nothing to do if a tool fills it in first; otherwise fix the YAML.",
    )


def _parse_rt(text: str, rel: str) -> _Parsed:
    try:
        raw = load_documents(text, rel)
    except YamlError as exc:
        # YAML allows tabs as trailing white space ("kind: Service\t"), and kubectl reads such
        # files; the parser used here rejects them. Retry without them (lines keep their numbers).
        stripped = _TRAILING_TABS.sub("", text) if "\t" in text else text
        if stripped == text:
            return [], [syntax_problem(exc.finding, text)]
        try:
            raw = load_documents(stripped, rel)
        except YamlError:
            return [], [syntax_problem(exc.finding, text)]
    try:
        return [(d.index, d.line, d.data, to_plain(d.data, rel)) for d in raw], []
    except YamlError as exc:  # an alias bomb is found while expanding: a finding on this file too
        return [], [exc.finding]


def _docs(parsed: _Parsed, rel: str) -> tuple[list[Doc], list[Finding]]:
    docs, problems = parsed
    return (
        [Doc(rel, index, line, node, data) for index, line, node, data in docs],
        [p if p.path == rel else replace(p, path=rel) for p in problems],
    )


def parse_docs(text: str, rel: str) -> tuple[list[Doc], list[Finding]]:
    """Parse ``text`` into documents; a YAML problem becomes a finding (and no documents).

    Each distinct content is parsed once (see :func:`_memo_parse`), whatever its path.
    """
    return _docs(_memo_parse("rt", text, rel, _parse_rt), rel)


def _parse_fast(text: str, rel: str) -> _Parsed:
    try:
        docs = fastyaml.load_docs_shared(text, rel)  # identical documents (a CRD in every copy) once
        return [(i, line, data, data) for i, (line, data) in enumerate(docs)], []
    except YamlError as exc:
        return [], [syntax_problem(exc.finding, text)]


def parse_tree_docs(text: str, rel: str) -> tuple[list[Doc], list[Finding]]:
    """Parse a file read only for whole-tree facts (CRDs, kro graphs, cluster names), fast.

    Like :func:`parse_docs`, but an unchanged file of the tree (a 400 KB ``gotk-components.yaml``
    per cluster) is read by libyaml in C (:func:`bot.domain.render.fastyaml.load_docs_shared`, the
    parser rendering uses) instead of the round-trip parser: its documents carry no line
    positions (``node`` is the plain data; findings point at the document's first line).
    When the round-trip parse of the same content is already known, it is used; kro graphs
    (whose findings need lines) always get it.
    """
    if "ResourceGraphDefinition" in text:
        return parse_docs(text, rel)
    with _PARSED_LOCK:
        known = _PARSED.get(("rt", blob_id(text)))
    if known is not None:
        return _docs(known[1], rel)
    return _docs(_memo_parse("fast", text, rel, _parse_fast), rel)


def iter_yaml_files(root: Path) -> Iterator[str]:
    """Yield every YAML file under ``root`` (relative, sorted), skipping ``.git`` and hidden folders.

    Symlinks are neither followed into nor yielded. One ``scandir`` per folder.
    """
    if not root.is_dir():
        return
    found: list[tuple[str, ...]] = []
    pending: list[tuple[str, tuple[str, ...]]] = [(str(root), ())]
    while pending:
        folder, parts = pending.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if not entry.name.startswith(".") or entry.name == ".github":
                            pending.append((entry.path, (*parts, entry.name)))
                    elif (
                        entry.is_file(follow_symlinks=False)
                        and os.path.splitext(entry.name)[1] in YAML_SUFFIXES
                    ):
                        found.append((*parts, entry.name))
        except OSError:
            continue
    for parts in sorted(found):
        yield "/".join(parts)


@dataclass(slots=True)
class Context:
    """Facts shared by the rules for one check: config, catalog, day, changed and fleet documents."""

    check: CheckInput
    config: dict[str, Any]
    eks: EksCatalog
    today: date
    changed: list[Doc] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    head_crds: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    rgds: dict[tuple[str, str], Doc] = field(default_factory=dict)
    patches: dict[str, str] = field(default_factory=dict)
    #: Every definition of a kind in the head tree (a monorepo may vendor several versions of a
    #: CRD, or several examples may define one kro kind); an object valid for any is valid.
    other_crds: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    other_rgds: dict[tuple[str, str], list[Doc]] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """Return a config section (``{}`` when absent)."""
        value = self.config.get(name)
        return value if isinstance(value, dict) else {}
