"""``/upgrade <cluster> [to <version>] [in-place|blue-green]``: its arguments and who may give it (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.domain.commands import code

USAGE = "`/upgrade <cluster> [to <version>] [in-place|blue-green]`"
STRATEGIES = ("in-place", "blue-green")
ROLES = ("read", "triage", "write", "maintain", "admin")
_CLUSTER = re.compile(r"^[a-z0-9]([a-z0-9-]{0,98}[a-z0-9])?$")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)$")


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """A checked ``/upgrade``; no ``target``: the newest in standard support; no ``strategy``: config."""

    cluster: str
    target: str = ""
    strategy: str = ""


def parse_upgrade(text: str) -> UpgradeRequest | str:
    """Return the request in the text after ``/upgrade``, or a usage answer (safe markdown)."""
    words = text.split()
    if not words:
        return f"Which cluster? Usage: {USAGE}"
    cluster, rest = words[0], words[1:]
    if not _CLUSTER.match(cluster):
        return f"{code(cluster)} is not a cluster name (lower-case letters, digits and `-`). Usage: {USAGE}"
    target = strategy = ""
    while rest:
        word = rest.pop(0).lower()
        if word == "to" and rest:
            raw = rest.pop(0)
            match = _VERSION.match(raw)
            if not match or target:
                return f"{code(raw)} is not a Kubernetes minor version such as `1.31`. Usage: {USAGE}"
            target = f"{int(match.group(1))}.{int(match.group(2))}"
        elif word in STRATEGIES and not strategy:
            strategy = word
        else:
            return f"I don't understand {code(word)} here. Usage: {USAGE}"
    return UpgradeRequest(cluster, target, strategy)


def is_production(env: str) -> bool:
    """Production environments by name: ``prod``, ``production``, ``prd`` and names starting ``prod-``."""
    low = env.lower()
    return low in ("prod", "production", "prd") or low.startswith(("prod-", "prod_", "production-"))


def min_role(env: str, section: Mapping[str, Any] | None) -> str:
    """The least repository role that may ``/upgrade`` a cluster of ``env`` (``upgrades.min_role``)."""
    configured = (section or {}).get("min_role")
    if isinstance(configured, Mapping) and str(configured.get(env, "")) in ROLES:
        return str(configured[env])
    return "maintain" if is_production(env) else "write"


def role_allows(role: str, needed: str) -> bool:
    """Whether a repository ``role`` (``role_name`` of the permission API) reaches ``needed``."""
    rank = {name: i for i, name in enumerate(ROLES)}
    return rank.get(role, -1) >= rank.get(needed, len(ROLES))
