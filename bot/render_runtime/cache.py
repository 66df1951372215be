"""A render cache keyed by the hash of everything a render reads.

The key covers the kustomize version, the target's render settings (path, variables,
namespace, ...) and the path and content hash of every input file, so a hit is exact:
two clusters whose overlays read the same files share one render, and the base side of
a pull request is rendered once per base revision. Entries live in memory and, when a
directory is given, on disk as JSON (safe to share between threads and processes:
files are written to a temporary name and renamed).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.domain.model import Finding, Severity

CacheEntry = tuple[list[dict[str, Any]], list[Finding]]


class RenderCache:
    """Memory (LRU, ``max_entries``) plus optional on-disk cache of rendered targets."""

    def __init__(self, directory: Path | None = None, max_entries: int = 4096) -> None:
        self.directory = directory
        self.max_entries = max_entries
        self._memory: OrderedDict[str, CacheEntry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._inflight: dict[str, threading.Event] = {}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> CacheEntry | None:
        """Return the cached objects and findings for ``key``, or None."""
        with self._lock:
            entry = self._memory.get(key)
            if entry is not None:
                self._memory.move_to_end(key)
                self.hits += 1
                return entry
        if self.directory is not None:
            path = self.directory / key[:2] / f"{key}.json"
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                findings = [Finding(**{**f, "severity": Severity(f["severity"])}) for f in data["findings"]]
                entry = (data["objects"], findings)
            except (OSError, ValueError, KeyError, TypeError):
                entry = None
            if entry is not None:
                self._remember(key, entry)
                with self._lock:
                    self.hits += 1
                return entry
        with self._lock:
            self.misses += 1
        return None

    def get_or_render(self, key: str, render: Callable[[], CacheEntry]) -> CacheEntry:
        """Return the entry for ``key``, rendering it once even when several threads ask at once."""
        while True:
            hit = self.get(key)
            if hit is not None:
                return hit
            with self._lock:
                event = self._inflight.get(key)
                owner = event is None
                if owner:
                    event = self._inflight[key] = threading.Event()
            assert event is not None
            if not owner:
                event.wait()
                continue
            try:
                objects, findings = render()
                self.put(key, objects, findings)
                return objects, findings
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
                event.set()

    def put(self, key: str, objects: list[dict[str, Any]], findings: list[Finding]) -> None:
        """Store a render result."""
        entry = (objects, findings)
        self._remember(key, entry)
        if self.directory is None:
            return
        folder = self.directory / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"objects": objects, "findings": [f.to_json() for f in findings]})
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(payload)
            os.replace(tmp, folder / f"{key}.json")
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _remember(self, key: str, entry: CacheEntry) -> None:
        with self._lock:
            self._memory[key] = entry
            self._memory.move_to_end(key)
            while len(self._memory) > self.max_entries:
                self._memory.popitem(last=False)
