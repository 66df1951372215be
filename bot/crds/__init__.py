"""Well-known upstream CRDs bundled as package data (see ``README.md`` here for sources and licences).

Only :func:`bundled_crd_files` and :func:`load_bundled` are public; the validation code
indexes them by (group, kind). The legacy kro ``ResourceGroup`` CRD is shipped for reference
and is excluded: validating against it would bless the old API.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from bot.domain.render import fastyaml

LEGACY_PREFIX = "legacy-"


def bundled_crd_files() -> list[str]:
    """Return the names of the bundled CRD files (legacy ones excluded)."""
    root = resources.files(__name__)
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.name.endswith(".yaml") and not entry.name.startswith(LEGACY_PREFIX)
    )


def read_text(name: str) -> str:
    """Return the text of one bundled file."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


@cache
def load_bundled(name: str) -> tuple[dict[str, Any], ...]:
    """Parse one bundled CRD file (trusted package data) into plain documents.

    Through :func:`bot.domain.render.fastyaml.load_all` (libyaml): the files are large (the
    Crossplane EKS CRDs are hundreds of KB) and this is on the path of a cold ``check``.
    """
    return tuple(d for d in fastyaml.load_all(read_text(name)) if isinstance(d, dict))


_GROUP = re.compile(r"^  group: *['\"]?([\w.-]+)", re.MULTILINE)
_NAMES_KIND = re.compile(r"^  names:\n(?:^    .*\n)*?^    kind: *['\"]?(\w+)", re.MULTILINE)


INDEX_FILE = "index.json"


@cache
def bundled_index() -> dict[tuple[str, str], str]:
    """Map (group, kind) to the bundled file defining it.

    Read from ``index.json`` (written by :func:`scan_index`; a test keeps it in step with the
    files): the CRD files are ~8 MB, and scanning them on every start-up would cost more than
    the rest of a small ``check``.
    """
    entries = json.loads(read_text(INDEX_FILE))
    return {(str(e["group"]), str(e["kind"])): str(e["file"]) for e in entries}


def scan_index() -> dict[tuple[str, str], str]:
    """Map (group, kind) to the bundled file defining it by scanning the files' text (no YAML parse)."""
    index: dict[tuple[str, str], str] = {}
    for name in bundled_crd_files():
        for doc in re.split(r"^---\s*$", read_text(name), flags=re.MULTILINE):
            group = _GROUP.search(doc)
            kind = _NAMES_KIND.search(doc)
            if group and kind:
                index[(group.group(1), kind.group(1))] = name
    return index


def write_index() -> str:
    """Return the text of ``index.json`` for the files bundled now (run after adding a CRD file)."""
    entries = [{"group": g, "kind": k, "file": f} for (g, k), f in sorted(scan_index().items())]
    return json.dumps(entries, indent=1) + "\n"
