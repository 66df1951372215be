"""Missed deliveries: ask GitHub to redeliver the App's webhook deliveries that failed.

GitHub does not retry a failed webhook delivery by itself. As its docs recommend
(https://docs.github.com/webhooks/using-webhooks/handling-failed-webhook-deliveries), the bot,
at start-up and then periodically:

1. lists the App's hook deliveries (``GET /app/hook/deliveries``, App JWT, newest first, cursor
   pagination through ``Link``) back to the last check (minus a small overlap, since records may
   appear late), stored in the delivery store's state (``redeliver.last_checked``);
2. groups the attempts by ``guid`` (the ``X-GitHub-Delivery`` id shared by a delivery and its
   redeliveries) and keeps the guids that have no successful (2xx) attempt;
3. skips a guid that is already in the delivery store (the bot stored it but answered too late,
   so GitHub recorded a timeout) and a guid that already failed ``max_attempts`` times;
4. asks GitHub to redeliver the most recent failed attempt of each remaining guid
   (``POST /app/hook/deliveries/{delivery_id}/attempts``).

A redelivery that arrives twice is absorbed by the store (one row per ``X-GitHub-Delivery``). With
several replicas, a soft lease in the store's state lets one replica do the work per period; a
race only costs a duplicate request, which the store absorbs.

The selection (:func:`plan_redeliveries`) is pure; :func:`redeliver_failed` does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import gidgethub
from aiohttp import web

from bot.github.types import GitHubClients
from bot.queue.base import DeliveryStore

log = logging.getLogger(__name__)

STATE_LAST_CHECKED = "redeliver.last_checked"
STATE_LEASE = "redeliver.lease"
LIST_URL = "/app/hook/deliveries?per_page=100"
REDELIVER_URL = "/app/hook/deliveries/{delivery_id}/attempts"


@dataclass(frozen=True)
class HookDelivery:
    """One attempt to deliver a webhook, as ``GET /app/hook/deliveries`` lists it."""

    id: int
    guid: str
    delivered_at: datetime
    status: str
    status_code: int
    redelivery: bool = False
    event: str = ""
    action: str | None = None
    installation_id: int | None = None

    @property
    def ok(self) -> bool:
        """True when the bot answered 2xx to this attempt."""
        return 200 <= self.status_code < 300

    @classmethod
    def from_api(cls, item: Any) -> HookDelivery | None:
        """Parse one list item; None when it lacks the fields needed to decide (logged, skipped)."""
        if not isinstance(item, dict):
            return None
        try:
            delivered_at = parse_time(str(item["delivered_at"]))
            return cls(
                id=int(item["id"]),
                guid=str(item["guid"]),
                delivered_at=delivered_at,
                status=str(item.get("status") or ""),
                status_code=int(item.get("status_code") or 0),
                redelivery=bool(item.get("redelivery")),
                event=str(item.get("event") or ""),
                action=item.get("action"),
                installation_id=item.get("installation_id"),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class RedeliveryReport:
    """What one pass did, for logs and tests."""

    scanned: int = 0
    failed: int = 0
    already_stored: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)
    redelivered: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped_lease: bool = False


def parse_time(value: str) -> datetime:
    """Parse an ISO 8601 time (``Z`` allowed) into an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def plan_redeliveries(
    attempts: Iterable[HookDelivery], *, since: datetime | None = None, max_attempts: int = 5
) -> tuple[list[HookDelivery], list[str]]:
    """Return (the attempt to redeliver per failed guid, oldest first; guids given up on).

    A guid with any successful attempt is not redelivered. Attempts before ``since`` are ignored,
    but a success before ``since`` still counts as a success. A guid whose failed attempts reach
    ``max_attempts`` is given up on (GitHub keeps deliveries for three days; the bot logs it).
    """
    by_guid: dict[str, list[HookDelivery]] = {}
    for attempt in attempts:
        by_guid.setdefault(attempt.guid, []).append(attempt)
    chosen: list[HookDelivery] = []
    gave_up: list[str] = []
    for guid, group in by_guid.items():
        if any(a.ok for a in group):
            continue
        recent = [a for a in group if since is None or a.delivered_at >= since]
        if not recent:
            continue
        if len(group) >= max_attempts:
            gave_up.append(guid)
            continue
        chosen.append(max(recent, key=lambda a: (a.delivered_at, a.id)))
    chosen.sort(key=lambda a: (a.delivered_at, a.id))
    return chosen, gave_up


async def _take_lease(
    store: DeliveryStore, owner: str, now: datetime, seconds: float, *, force: bool = False
) -> bool:
    """Take the soft redelivery lease unless another replica holds an unexpired one (or ``force``)."""
    current = await store.get_state(STATE_LEASE)
    if current and not force:
        holder, _, until = current.partition("|")
        with contextlib.suppress(ValueError):
            if holder != owner and parse_time(until) > now:
                return False
    until = (now + timedelta(seconds=seconds)).isoformat()
    await store.set_state(STATE_LEASE, f"{owner}|{until}")
    return True


async def redeliver_failed(
    clients: GitHubClients,
    store: DeliveryStore,
    *,
    now: datetime | None = None,
    initial_lookback: timedelta = timedelta(hours=1),
    overlap: timedelta = timedelta(minutes=2),
    max_items: int = 5000,
    max_attempts: int = 5,
    owner: str | None = None,
    lease_seconds: float = 120.0,
    force: bool = False,
) -> RedeliveryReport:
    """Run one pass: list recent hook deliveries and redeliver the failed ones (see module docs).

    ``initial_lookback`` applies when no pass ever ran (GitHub keeps three days of deliveries).
    The listing stops at ``max_items`` attempts. One failing redelivery request is logged and
    reported; the others still go out. ``last_checked`` advances only after a complete pass.
    ``force`` runs the pass even while another replica holds the lease (and takes it): a
    replica that just started must not wait for the lease of one that died (SIGKILL).
    """
    now = now or datetime.now(UTC)
    report = RedeliveryReport()
    if owner is not None and not await _take_lease(store, owner, now, lease_seconds, force=force):
        report.skipped_lease = True
        return report
    last = await store.get_state(STATE_LAST_CHECKED)
    since = now - initial_lookback
    if last:
        try:
            since = parse_time(last) - overlap
        except ValueError:
            log.warning("ignoring unreadable %s state %r", STATE_LAST_CHECKED, last)
    # Successes up to a day older than the window still mark a guid as delivered.
    horizon = since - timedelta(days=1)
    gh = await clients.app_api()
    attempts: list[HookDelivery] = []
    async with contextlib.aclosing(gh.getiter(LIST_URL)) as items:
        async for item in items:
            report.scanned += 1
            attempt = HookDelivery.from_api(item)
            if attempt is None:
                log.warning("skipping an unreadable hook delivery record")
                continue
            attempts.append(attempt)
            if attempt.delivered_at < horizon or report.scanned >= max_items:
                break
    chosen, report.gave_up = plan_redeliveries(attempts, since=since, max_attempts=max_attempts)
    report.failed = len(chosen) + len(report.gave_up)
    for guid in report.gave_up:
        log.error(
            "webhook delivery %s failed %d times; not asking again (retry it in GitHub)", guid, max_attempts
        )
    for attempt in chosen:
        if await store.get(attempt.guid) is not None:
            report.already_stored.append(attempt.guid)
            continue
        try:
            await gh.post(REDELIVER_URL, url_vars={"delivery_id": str(attempt.id)}, data=b"")
        except gidgethub.GitHubException as exc:
            log.warning("redelivery of %s (%s) refused: %s", attempt.guid, attempt.event, exc)
            report.errors.append(attempt.guid)
            continue
        log.info("asked GitHub to redeliver %s (%s %s)", attempt.guid, attempt.event, attempt.action or "")
        report.redelivered.append(attempt.guid)
    await store.set_state(STATE_LAST_CHECKED, now.isoformat())
    return report


async def run_periodically(
    clients: GitHubClients,
    store: DeliveryStore,
    *,
    interval: float = 300.0,
    stop: asyncio.Event | None = None,
    **options: Any,
) -> None:
    """Run :func:`redeliver_failed` now and then every ``interval`` seconds (±10 %) until ``stop``.

    A failing pass (GitHub down, bad credentials) is logged and retried at the next period; it
    never stops the service. The first pass runs whoever holds the lease (the holder may be a
    replica that was killed: its missed deliveries are exactly what start-up must recover), and
    the lease lasts at most one period, so a dead holder blocks the others for one period only.
    """
    stop = stop or asyncio.Event()
    owner = options.pop("owner", None) or f"replica-{uuid.uuid4().hex[:8]}"
    options.setdefault("lease_seconds", min(120.0, interval))
    first = True
    while not stop.is_set():
        try:
            report = await redeliver_failed(clients, store, owner=owner, force=first, **options)
            first = False
            if report.redelivered or report.errors:
                log.info(
                    "redelivery pass: %d scanned, %d redelivered, %d refused",
                    report.scanned,
                    len(report.redelivered),
                    len(report.errors),
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep the service up; the next pass tries again
            log.warning("redelivery pass failed: %s: %s", type(exc).__name__, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval * random.uniform(0.9, 1.1))


@contextlib.asynccontextmanager
async def redelivery_task(
    clients: GitHubClients, store: DeliveryStore, *, interval: float = 300.0, **options: Any
) -> AsyncIterator[asyncio.Task[None]]:
    """Run :func:`run_periodically` in the background for the duration of the block (for cleanup_ctx)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_periodically(clients, store, interval=interval, stop=stop, **options))
    try:
        yield task
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()


def cleanup_ctx(
    clients_key: web.AppKey[Any],
    store_key: web.AppKey[Any],
    *,
    interval: float = 300.0,
    **options: Any,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Return an aiohttp ``cleanup_ctx`` running the periodic pass while the app runs.

    Append it after the contexts that set ``store_key`` and ``clients_key``. When the app has
    no GitHub clients (no App credentials) or ``interval`` is 0, it logs why and does nothing.
    """

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        clients = app.get(clients_key)
        if clients is None or interval <= 0:
            log.info(
                "missed-delivery redelivery is off (%s)", "disabled" if interval <= 0 else "no App clients"
            )
            yield
            return
        async with redelivery_task(clients, app[store_key], interval=interval, **options):
            yield

    return ctx
