"""EKS version facts from AWS: ``describe_cluster_versions`` (cached) and ``describe_addon_versions``.

Both accept a boto3 ``Session`` (an ``eks`` client is made from it) or an EKS client
directly. When AWS cannot be reached or refuses (no credentials, no permission, throttled),
:func:`online_catalog` falls back to the bundled calendar and says so in the catalog's
``source``, so validation never fails because AWS is away. Errors are logged by class and
code only: never a credential.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

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
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        log.warning(
            "describe_cluster_versions failed (%s %s); using the bundled EKS calendar",
            type(exc).__name__,
            code,
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
    """Return ``catalog`` with add-on versions for each Kubernetes version filled in (best effort)."""
    names = list(addon_names)
    for version in kubernetes_versions:
        try:
            catalog.addons.update(addon_versions(session_or_client, version, addon_names=names))
        except (ClientError, BotoCoreError) as exc:
            log.warning(
                "describe_addon_versions failed (%s); add-on versions not checked", type(exc).__name__
            )
            break
    return catalog
