"""The sandboxed Helm worker: renders charts with the embedded Helm engine (helm-python-sdk).

Run by :mod:`bot.render_runtime.helm_runner` as ``python -I helm_worker.py`` inside the sandbox
(own process, no network namespace, memory and CPU limits, empty environment). It reads one JSON
request per line on stdin and writes one JSON answer per line on stdout:

request: ``{"chart": dir, "key": digest, "values": {...}, "name": str, "namespace": str, "crds": bool}``
answer:  ``{"ok": true, "manifests": [[template, text], ...]}`` or ``{"ok": false, "error": str}``

It imports nothing from the bot (``-I`` ignores PYTHONPATH): only the standard library and
``helm_python``. Helm's ``lookup`` returns nothing here (no cluster), and nothing is fetched.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from typing import Any

MAX_LOADED = 32


def _render(charts: OrderedDict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    import helm_python as helm

    key = str(request.get("key") or request["chart"])
    chart = charts.get(key)
    if chart is None:
        chart = helm.Chart.load(request["chart"])
        charts[key] = chart
        if len(charts) > MAX_LOADED:
            charts.popitem(last=False)[1].close()
    charts.move_to_end(key)
    rendered = chart.render(
        values=request.get("values") or {},
        name=request.get("name") or "release",
        namespace=request.get("namespace") or "default",
        is_install=True,
    )
    manifests = [[path, text] for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")]
    if request.get("crds"):
        manifests = [[f"crds/{c['filename']}", c["data"]] for c in chart.crds] + manifests
    return {"ok": True, "manifests": manifests}


def main() -> None:
    """Serve requests until stdin closes."""
    charts: OrderedDict[str, Any] = OrderedDict()
    try:
        import helm_python as helm

        helm.disable_logging()
    except Exception as exc:  # the library is missing or does not load: every answer says so
        error = f"the Helm engine (helm-python-sdk) cannot be loaded: {type(exc).__name__}: {exc}"
        for _line in sys.stdin:
            print(json.dumps({"ok": False, "error": error, "engine": False}), flush=True)
        return
    for line in sys.stdin:
        try:
            answer = _render(charts, json.loads(line))
        except helm.HelmError as exc:
            answer = {"ok": False, "error": str(exc)}
        except Exception as exc:
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
