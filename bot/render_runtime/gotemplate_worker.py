"""The sandboxed Go template worker: evaluates ApplicationSet templates with Helm's Go engine.

Run by :mod:`bot.render_runtime.gotemplate_runner` as ``python -I gotemplate_worker.py`` inside
the sandbox (own process, no network namespace when the kernel allows it, memory and CPU
limits, empty environment). One JSON request per line on stdin, one JSON answer per line on
stdout:

request: ``{"archive": base64 .tgz, "values": {...}, "strict": bool}``
answer:  ``{"ok": true, "files": {name: text}}`` or
         ``{"ok": false, "error": str, "engine": bool, "kind": str}`` (``kind``: :func:`error_kind`,
         so the bot never matches the error text itself)

It imports nothing from the bot (``-I`` ignores PYTHONPATH): only the standard library and
``helm_python``. The chart is read from memory; nothing is written or fetched.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

# How Go's text/template (through Helm) words the errors Argo CD tells apart: a template that
# does not parse, and one naming a key its parameters lack under missingkey=error.
_PARSE = ("parse error",)
_MISSING_KEY = ("map has no entry for key", "can't evaluate field", "nil pointer evaluating")


def error_kind(message: str) -> str:
    """The kind of a Go template error: "parse", "missing_key" or "execute"."""
    if any(m in message for m in _PARSE):
        return "parse"
    if any(m in message for m in _MISSING_KEY):
        return "missing_key"
    return "execute"


def _render(request: dict[str, Any]) -> dict[str, Any]:
    try:
        import helm_python as helm
        from helm_python import _native
    except Exception as exc:  # the engine is missing or does not load
        return {"ok": False, "engine": False, "error": f"helm-python-sdk does not load: {exc}"}
    archive = base64.b64decode(request["archive"])
    # Chart.render has no `strict`; the library's render options do (Go's missingkey=error).
    options = json.dumps({"strict": True}) if request.get("strict") else None
    try:
        with helm.Chart.load_archive(archive) as chart:
            text = _native.call_string("helm_render", chart._raw(), json.dumps(request["values"]), options)
    except helm.HelmError as exc:
        return {"ok": False, "engine": True, "error": str(exc), "kind": error_kind(str(exc))}
    return {"ok": True, "files": json.loads(text)}


def main() -> None:
    for line in sys.stdin:
        try:
            answer = _render(json.loads(line))
        except Exception as exc:  # a bad request must not stop the worker
            answer = {"ok": False, "engine": True, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
