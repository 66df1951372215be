"""The dashboard page: one self-contained HTML document (CSS and script inline, no CDN).

The fleet JSON is embedded in the page; with ``live=True`` the script polls ``fleet.json``
with ``If-None-Match`` and redraws the table when the ETag changes, without a reload.
Every string reaches the DOM through ``textContent`` (nothing from a repository is parsed
as HTML).
"""

from __future__ import annotations

import functools
import html
import json
from pathlib import Path
from typing import Any

_ASSETS = Path(__file__).with_name("assets")


@functools.cache
def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


def _json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` or ``<!--``)."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")


def render_page(
    fleet: dict[str, Any],
    *,
    live_url: str | None = None,
    etag: str | None = None,
    login: str | None = None,
    interval_ms: int = 5000,
) -> str:
    """Return the dashboard HTML for ``fleet`` (static when ``live_url`` is None)."""
    body_attrs = ""
    if live_url:
        body_attrs = (
            f' data-live="{html.escape(live_url)}" data-interval="{interval_ms}"'
            f' data-etag="{html.escape(etag or "")}"'
        )
    who = (
        f'<form class="live signout" method="post" action="/fleet/logout">signed in as {html.escape(login)} '
        '<button type="submit">sign out</button></form>'
        if login
        else ""
    )
    cols = [
        ("cluster", "Cluster"),
        ("urgency", "Needs action"),
        ("env", "Env"),
        ("region", "Region"),
        ("version", "Kubernetes"),
        ("days", "EKS support"),
        ("violations", "Policy"),
        ("secrets", "Secrets"),
        (None, "Add-ons"),
        ("health", "Health"),
        ("pending", "Waiting"),
    ]
    heads = "".join(
        f'<th scope="col" data-key="{k}" aria-sort="none"><button type="button">{t}</button></th>'
        if k
        else f'<th scope="col">{t}</th>'
        for k, t in cols
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Fleet compliance · gitops-bot</title><style>{_asset("fleet.css")}</style></head>
<body{body_attrs}>
<header><h1>Fleet compliance</h1><span class="live" id="generated"></span>
<span class="live" id="live" aria-live="polite">{"live" if live_url else "static snapshot"}</span>
{who}</header>
<main>
<ul class="counts" id="counts" aria-label="Totals"></ul>
<form class="filters" role="search" onsubmit="return false">
<label>Environment<select id="f-env"></select></label>
<label>Region<select id="f-region"></select></label>
<label>State<select id="f-state"><option value="">all</option><option value="action">needs action</option>
<option value="ok">ok</option><option value="unsupported">out of support</option>
<option value="extended">extended support</option><option value="standard">standard support</option>
<option value="paused">promotion held or frozen</option>
</select></label>
<label>Search (press /)<input id="f-q" type="search" placeholder="cluster, repository, reason"></label>
<span class="live" id="shown" aria-live="polite"></span>
</form>
<div class="scroll"><table id="clusters">
<caption>Clusters, the ones that need action first. Sort by a column heading.</caption>
<thead><tr>{heads}</tr></thead><tbody id="rows"></tbody></table></div>
<section><h2>Promotion</h2><p class="live" id="no-chain" hidden>No promotion chain is configured: list
the environments and their branches under <code>environments:</code> in <code>.github/gitops-bot.yml</code>
to see what waits between them.</p><div class="scroll"><table><thead><tr><th scope="col">Environment</th>
<th scope="col">Branch</th>
<th scope="col">Tip</th><th scope="col">Health</th><th scope="col">Commits waiting</th>
<th scope="col">Open promotions</th><th scope="col">Last promotion</th><th scope="col">Holds and freezes</th>
</tr></thead><tbody id="envs"></tbody></table></div></section>
<section><h2>Governance, last 30 days</h2><table><thead><tr><th scope="col">Repository</th>
<th scope="col">Merged PRs</th><th scope="col">Signed and approved</th>
<th scope="col">Merged with a failing check</th>
</tr></thead><tbody id="gov"></tbody></table></section>
</main>
<script type="application/json" id="fleet-data">{_json_for_script(fleet)}</script>
<script>{_asset("fleet.js")}</script>
</body></html>
"""
