"""EKS version facts from AWS: ``describe_cluster_versions`` (cached) and ``describe_addon_versions``.

Both accept a boto3 ``Session`` (an ``eks`` client is made from it) or an EKS client
directly. When AWS cannot be reached or refuses (no credentials, no permission, throttled),
:func:`online_catalog` falls back to the bundled calendar and says so in the catalog's
``source``, so validation never fails because AWS is away. Errors are logged by class and
code only: never a credential.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.domain.upgrades.tables import merged_addon_table
from bot.domain.validate.eks import EksCatalog, EksVersion, parse_minor

log = logging.getLogger(__name__)

DEFAULT_TTL = 6 * 3600.0
_cache: dict[str, tuple[float, EksCatalog]] = {}
_lock = threading.Lock()


def _client(session_or_client: Any) -> Any:
    if hasattr(session_or_client, "describe_cluster_versions"):
        return session_or_client
    return session_or_client.client("eks")


def _day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        return date.fromisoformat(value[:10])
    return None


def _describe(client: Any) -> list[EksVersion]:
    out: list[EksVersion] = []
    paginator = client.get_paginator("describe_cluster_versions")
    for page in paginator.paginate(includeAll=True):
        for info in page.get("clusterVersions") or []:
            version = str(info.get("clusterVersion") or "")
            standard, extended = (
                _day(info.get("endOfStandardSupportDate")),
                _day(info.get("endOfExtendedSupportDate")),
            )
            if not parse_minor(version) or standard is None:
                continue
            out.append(EksVersion(version, _day(info.get("releaseDate")), standard, extended or standard))
    return out


def _error_code(exc: Exception) -> str:
    """AWS's error code of a refused call ("" for a botocore error of its own): never a credential."""
    return str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""


def clear_cache() -> None:
    """Forget cached catalogs (tests, or after a configuration change)."""
    with _lock:
        _cache.clear()


def online_catalog(
    session_or_client: Any,
    *,
    ttl: float = DEFAULT_TTL,
    clock: Callable[[], float] = time.monotonic,
    cache_key: str = "default",
) -> EksCatalog:
    """Return the EKS version catalog from ``eks.describe_cluster_versions``, cached for ``ttl`` seconds.

    On any AWS error, or an empty answer, return the bundled catalog (not cached, so the
    next call tries AWS again).
    """
    now = clock()
    with _lock:
        hit = _cache.get(cache_key)
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
    try:
        versions = _describe(_client(session_or_client))
    except (ClientError, BotoCoreError) as exc:
        log.warning(
            "describe_cluster_versions failed (%s %s); using the bundled EKS calendar",
            type(exc).__name__,
            _error_code(exc),
        )
        fallback = EksCatalog.bundled()
        fallback.source = "bundled calendar (AWS unavailable)"
        return fallback
    if not versions:
        return EksCatalog.bundled()
    catalog = EksCatalog(versions, source="EKS API (describe_cluster_versions)")
    with _lock:
        _cache[cache_key] = (now, catalog)
    return catalog


def addon_versions(
    session_or_client: Any,
    kubernetes_version: str,
    *,
    addon_names: Iterable[str] = (),
) -> dict[tuple[str, str], frozenset[str]]:
    """Return ``(addon, kubernetes version) -> compatible add-on versions`` via ``describe_addon_versions``.

    Only names in ``addon_names`` are asked for when given (one paginated call each);
    otherwise every add-on for that Kubernetes version. Raises botocore errors: the caller
    decides whether add-on checks are skipped.
    """
    client = _client(session_or_client)
    paginator = client.get_paginator("describe_addon_versions")
    calls: list[dict[str, Any]] = [
        {"kubernetesVersion": kubernetes_version, "addonName": n} for n in addon_names
    ]
    out: dict[tuple[str, str], set[str]] = {}
    for params in calls or [{"kubernetesVersion": kubernetes_version}]:
        for page in paginator.paginate(**params):
            for addon in page.get("addons") or []:
                name = str(addon.get("addonName") or "")
                versions = out.setdefault((name, kubernetes_version), set())
                for info in addon.get("addonVersions") or []:
                    compat = [c.get("clusterVersion") for c in info.get("compatibilities") or []]
                    if not compat or kubernetes_version in compat:
                        versions.add(str(info.get("addonVersion")))
    return {k: frozenset(v) for k, v in out.items()}


def catalog_with_addons(
    session_or_client: Any,
    catalog: EksCatalog,
    kubernetes_versions: Iterable[str],
    addon_names: Iterable[str],
) -> EksCatalog:
    """Return ``catalog`` with add-on versions for each Kubernetes version filled in (best effort).

    Only the pairs ``catalog`` lacks are asked for, so on a cached online catalog each pair is
    asked once per cache period; no names means every add-on of each version. An AWS error leaves
    the rest out, and the add-on check skips what it cannot judge (a name AWS does not know stays
    unjudged, never an error).
    """
    names = sorted(set(addon_names))
    for version in kubernetes_versions:
        missing = [n for n in names if (n, version) not in catalog.addons]
        if names and not missing:
            continue
        try:
            catalog.addons.update(addon_versions(session_or_client, version, addon_names=missing))
        except (ClientError, BotoCoreError) as exc:
            log.warning(
                "describe_addon_versions failed (%s); add-on versions not checked", type(exc).__name__
            )
            break
    return catalog


def _version_key(version: str) -> tuple[int, ...]:
    """``v1.33.10-eksbuild.2`` -> ``(1, 33, 10, 2)``: add-on versions in EKS's order."""
    return tuple(int(n) for n in re.findall(r"\d+", version))


def default_addon_versions(
    session_or_client: Any, kubernetes_versions: Iterable[str], addon_names: Iterable[str]
) -> dict[str, dict[str, str]]:
    """``{addon: {kubernetes version: version}}``: the version EKS installs by default for each
    Kubernetes version (``compatibilities[].defaultVersion``), else the newest compatible one.

    One paginated ``describe_addon_versions`` per add-on and version. Raises botocore errors: the
    caller falls back to the bundled table and says so.
    """
    client = _client(session_or_client)
    paginator = client.get_paginator("describe_addon_versions")
    out: dict[str, dict[str, str]] = {}
    for name in sorted(set(addon_names)):
        for kubernetes_version in kubernetes_versions:
            default, compatible = None, []
            for page in paginator.paginate(kubernetesVersion=kubernetes_version, addonName=name):
                for addon in page.get("addons") or []:
                    for info in addon.get("addonVersions") or []:
                        version = str(info.get("addonVersion") or "")
                        for compat in info.get("compatibilities") or []:
                            if compat.get("clusterVersion") != kubernetes_version or not version:
                                continue
                            compatible.append(version)
                            if compat.get("defaultVersion"):
                                default = version
            chosen = default or max(compatible, key=_version_key, default=None)
            if chosen:
                out.setdefault(name, {})[kubernetes_version] = chosen
    return out


def upgrade_addon_table(
    session_or_client: Any,
    kubernetes_versions: Iterable[str],
    addon_names: Iterable[str],
    bundled: Mapping[str, Mapping[str, str]],
) -> tuple[dict[str, dict[str, str]], str | None]:
    """The add-on table an upgrade plan uses: AWS's defaults over ``bundled``, and why not AWS's
    (``None`` when AWS answered). Never raises for AWS being away."""
    try:
        found = default_addon_versions(session_or_client, list(kubernetes_versions), addon_names)
    except (ClientError, BotoCoreError) as exc:
        why = _error_code(exc) or type(exc).__name__
        log.warning("describe_addon_versions failed (%s); bundled add-on table", why)
        return merged_addon_table(bundled, {}), why
    return merged_addon_table(bundled, found), None


def _eks_section(config: Mapping[str, Any]) -> Mapping[str, Any]:
    section = config.get("eks")
    return section if isinstance(section, Mapping) else {}


def online(config: Mapping[str, Any]) -> bool:
    """Whether ``eks.online`` asks AWS (from the base branch's configuration)."""
    return bool(_eks_section(config).get("online"))


def session_for(config: Mapping[str, Any]) -> Any:
    """A boto3 session (the usual credential chain and ``AWS_REGION``) when ``eks.online``, else None."""
    if not online(config):
        return None
    import boto3

    return boto3.Session()


def catalog_for(config: Mapping[str, Any], session_or_client: Any) -> EksCatalog:
    """The EKS calendar: AWS's (cached ``eks.cache_ttl_seconds``) when ``session_or_client``, else bundled."""
    if session_or_client is None:
        return EksCatalog.bundled()
    ttl = float(_eks_section(config).get("cache_ttl_seconds", DEFAULT_TTL))
    return online_catalog(session_or_client, ttl=ttl)
