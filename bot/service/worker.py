"""The delivery worker: claim, dispatch with isolation, complete or retry or dead-letter.

At-least-once: a delivery is ``done`` only after all its handlers returned. A failure is retried
after an exponential backoff with jitter (``base * 2**(attempt-1)``, capped, times a random
factor in [0.5, 1]); after ``max_attempts`` it becomes a dead letter that ``gitops-bot
deliveries retry`` puts back. Claims are leases: if the process dies, the delivery becomes
claimable again when its lease expires. Per-pull-request order comes from the store's
``ordering_key`` rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import gidgethub.abc
import gidgethub.routing
import gidgethub.sansio

from bot.github.types import GitHubClients
from bot.github.writes import GitHubWrites
from bot.queue.base import Delivery, DeliveryStore
from bot.service.context import DiffRenderer, HandlerContext, RepoAccess
from bot.service.dispatch import HandlerFailure, dispatch_isolated, handlers_for, summarize_failures
from bot.service.metrics import Metrics, event_label
from bot.service.notify import clear_dead_letter, error_state_key, report_dead_letter
from bot.service.repos import repo_access
from bot.service.settings import Settings

log = logging.getLogger(__name__)


class PermanentDeliveryError(Exception):
    """A delivery that can never succeed (unreadable payload); it is dead-lettered at once."""


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Return the seconds to wait before retry number ``attempt`` (1-based).

    ``min(cap, base * 2**(attempt-1))`` scaled by a jitter factor in [0.5, 1.0], so retries of
    many deliveries that failed together spread out but never wait longer than ``cap``.
    """
    exponent = min(max(attempt - 1, 0), 60)
    delay = min(cap, base * (2.0**exponent))
    return delay * (0.5 + 0.5 * rng())


def event_from_delivery(delivery: Delivery) -> gidgethub.sansio.Event:
    """Build the gidgethub event of a stored delivery; raise PermanentDeliveryError when unreadable."""
    try:
        data = json.loads(delivery.payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PermanentDeliveryError(f"stored payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PermanentDeliveryError("stored payload is not a JSON object")
    return gidgethub.sansio.Event(data, event=delivery.event, delivery_id=delivery.id)


def default_worker_id() -> str:
    """Return ``host:pid:random`` — unique per process, readable in ``deliveries`` output."""
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(24):06x}"


# Worker argument -> the Settings field it comes from.
SETTINGS_OF_WORKER = {
    "concurrency": "worker_concurrency",
    "max_attempts": "max_attempts",
    "backoff_base": "backoff_base",
    "backoff_cap": "backoff_cap",
    "lease_seconds": "lease_seconds",
    "poll_interval": "poll_interval",
    "bot_login": "bot_login",
    "retention_days": "retention_days",
}
PRUNE_EVERY_SECONDS = 3600.0


def process_writes(store: DeliveryStore | None, settings: Settings | None) -> GitHubWrites:
    """The write locks and App id of a process running handlers (``serve`` and ``worker``).

    Check-run and comment writes are serialised across the processes sharing ``store`` too:
    PostgreSQL replicas through advisory locks, processes sharing one SQLite file through record
    locks on its ``-locks`` file. The App id comes from ``GITHUB_APP_ID`` (checked a number).
    """
    app_id = settings.app_id if settings is not None else None
    return GitHubWrites(
        app_id=int(app_id) if app_id else None,
        shared_lock=store.advisory_lock if store is not None else None,
    )


@dataclass
class Outcome:
    """What processing one delivery came to: ``done``, ``retry`` or ``dead``."""

    status: str
    failures: list[HandlerFailure]
    error: str | None = None


class Worker:
    """Claims deliveries from a store and runs them through the router."""

    def __init__(
        self,
        store: DeliveryStore | None,
        clients: GitHubClients | None,
        router: gidgethub.routing.Router,
        *,
        repos: RepoAccess | Callable[[int | None], RepoAccess] | None = None,
        metrics: Metrics | None = None,
        settings: Settings | None = None,
        worker_id: str | None = None,
        concurrency: int = 4,
        max_attempts: int = 8,
        backoff_base: float = 2.0,
        backoff_cap: float = 600.0,
        lease_seconds: float = 300.0,
        poll_interval: float = 1.0,
        bot_login: str = "gitops-bot[bot]",
        retention_days: float = 7.0,
        rng: Callable[[], float] = random.random,
        diff_renderer: DiffRenderer | None = None,
        writes: GitHubWrites | None = None,
    ) -> None:
        self.store = store
        self.clients = clients
        self.router = router
        self.repos = repos
        self.metrics = metrics
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = max(1, concurrency)
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.bot_login = bot_login
        self.retention_days = retention_days
        self.rng = rng
        self.diff_renderer = diff_renderer
        #: The write locks and App id every handler run of this worker shares (bot.github.writes).
        self.writes = writes if writes is not None else process_writes(store, settings)
        self._last_prune = -PRUNE_EVERY_SECONDS
        self._wake = asyncio.Event()
        self._stopping = False
        #: When the claim loop last went round (monotonic seconds); ``None`` before it starts.
        self.last_poll: float | None = None
        self._running: set[asyncio.Task[Outcome]] = set()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: DeliveryStore | None,
        clients: GitHubClients | None,
        router: gidgethub.routing.Router,
        *,
        repos: RepoAccess | Callable[[int | None], RepoAccess] | None = None,
        metrics: Metrics | None = None,
        diff_renderer: DiffRenderer | None = None,
    ) -> Worker:
        """Build a worker with the retry, lease and concurrency settings of ``settings``."""
        tuning = {arg: getattr(settings, name) for arg, name in SETTINGS_OF_WORKER.items()}
        return cls(
            store,
            clients,
            router,
            repos=repos,
            metrics=metrics,
            settings=settings,
            diff_renderer=diff_renderer,
            **tuning,
        )

    # -- one delivery ---------------------------------------------------------------------
    def repos_for(self, installation_id: int | None) -> RepoAccess:
        """Return the git access handed to handlers for a delivery of ``installation_id``."""
        return repo_access(self.repos, installation_id)

    async def run_delivery(
        self, delivery: Delivery, *, gh: gidgethub.abc.GitHubAPI | None = None
    ) -> list[HandlerFailure]:
        """Run every handler for ``delivery``; return the handler failures.

        Raises PermanentDeliveryError for an unreadable payload or an event that has handlers
        but names no installation; any error getting the installation client propagates (it
        is retried). Events without handlers finish without contacting GitHub.
        """
        event = event_from_delivery(delivery)
        if not handlers_for(self.router, event):
            return []
        if gh is None:
            if delivery.installation_id is None:
                raise PermanentDeliveryError(
                    f"{delivery.event} delivery names no installation, so there is no token to act with"
                )
            if self.clients is None:
                raise RuntimeError("no GitHub App credentials are configured in this process")
            gh = await self.clients.installation_api(delivery.installation_id)
        ctx = HandlerContext(
            repos=self.repos_for(delivery.installation_id),
            store=self.store,
            metrics=self.metrics,
            settings=self.settings,
            delivery_id=delivery.id,
            bot_login=self.bot_login,
            diff_renderer=self.diff_renderer,
            writes=self.writes,
        )
        try:
            return await dispatch_isolated(self.router, event, gh, ctx)
        finally:
            limit = getattr(gh, "rate_limit", None)
            if self.metrics is not None and limit is not None:
                self.metrics.rate_limit_remaining.set(limit.remaining)

    async def process(self, delivery: Delivery) -> Outcome:
        """Run one claimed delivery and record its outcome in the store."""
        if self.store is None:
            raise RuntimeError("process() needs a store; use run_delivery() without one")
        started = time.perf_counter()
        failures: list[HandlerFailure] = []
        permanent = False
        heartbeat = asyncio.create_task(self._keep_lease(delivery.id))
        try:
            failures = await self.run_delivery(delivery)
            error = summarize_failures(failures) if failures else None
        except asyncio.CancelledError:
            # Shutting down: hand the delivery back for an immediate retry instead of
            # leaving it leased until the lease expires.
            await asyncio.shield(
                self.store.fail(delivery.id, self.worker_id, "interrupted by shutdown", datetime.now(UTC))
            )
            raise
        except PermanentDeliveryError as exc:
            error, permanent = str(exc), True
        except Exception as exc:
            log.exception("delivery %s (%s) failed before its handlers ran", delivery.id, delivery.event)
            error = f"{type(exc).__name__}: {exc}"[:1000]
        finally:
            heartbeat.cancel()
        if error is None:
            await self.store.complete(delivery.id, self.worker_id)
            outcome = Outcome("done", failures)
            if delivery.ordering_key and await self.store.get_state(error_state_key(delivery.ordering_key)):
                gh = await self._gh_for(delivery)
                if gh is not None:
                    await clear_dead_letter(gh, self.store, delivery, bot_login=self.bot_login)
        elif permanent or delivery.attempts >= self.max_attempts:
            await self.store.fail(delivery.id, self.worker_id, error, None)
            log.error(
                "delivery %s (%s) is now a dead letter after %d attempt(s): %s",
                delivery.id,
                delivery.event,
                delivery.attempts,
                error,
            )
            outcome = Outcome("dead", failures, error)
            gh = await self._gh_for(delivery) if delivery.ordering_key else None
            if gh is not None:
                await report_dead_letter(
                    gh, self.store, delivery, failures, error, writes=self.writes, bot_login=self.bot_login
                )
        else:
            delay = backoff_delay(
                delivery.attempts, base=self.backoff_base, cap=self.backoff_cap, rng=self.rng
            )
            retry_at = datetime.now(UTC) + timedelta(seconds=delay)
            await self.store.fail(delivery.id, self.worker_id, error, retry_at)
            log.warning(
                "delivery %s (%s) attempt %d failed, retrying in %.1fs: %s",
                delivery.id,
                delivery.event,
                delivery.attempts,
                delay,
                error,
            )
            outcome = Outcome("retry", failures, error)
        if self.metrics is not None:
            self.metrics.deliveries.labels(event=event_label(delivery.event), outcome=outcome.status).inc()
            self.metrics.processing_seconds.labels(event=event_label(delivery.event)).observe(
                time.perf_counter() - started
            )
        return outcome

    async def _gh_for(self, delivery: Delivery) -> gidgethub.abc.GitHubAPI | None:
        """Return the installation client of a delivery for best-effort notes, or None."""
        if self.clients is None or delivery.installation_id is None:
            return None
        try:
            return await self.clients.installation_api(delivery.installation_id)
        except Exception:
            log.exception("no GitHub client for installation %s", delivery.installation_id)
            return None

    async def _keep_lease(self, delivery_id: str) -> None:
        """Extend the lease every third of its length while a delivery runs."""
        if self.store is None:
            return
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await self.store.extend_lease(delivery_id, self.worker_id, self.lease_seconds):
                    log.warning("lost the lease of delivery %s; another worker may run it too", delivery_id)
                    return
            except Exception:
                log.exception("could not extend the lease of delivery %s", delivery_id)

    # -- the loop -------------------------------------------------------------------------
    def stalled_for(self) -> float | None:
        """Seconds since the claim loop last went round, or None when it has not started.

        The loop goes round at least every ``poll_interval`` (sooner when woken), whatever the
        deliveries in progress do, so a large value means the event loop is blocked or the
        loop died: what a liveness probe should catch.
        """
        if self.last_poll is None:
            return None
        return time.monotonic() - self.last_poll

    def wake(self) -> None:
        """Tell the loop that new work may be waiting (called after a webhook is stored)."""
        self._wake.set()

    async def run_once(self) -> list[Outcome]:
        """Claim what is runnable now (up to the concurrency) and process it; for tests and drains."""
        if self.store is None:
            raise RuntimeError("run_once() needs a store")
        claimed = await self.store.claim(
            self.worker_id, limit=self.concurrency, lease_seconds=self.lease_seconds
        )
        return list(await asyncio.gather(*(self.process(d) for d in claimed)))

    async def drain(self, *, max_rounds: int = 1000) -> list[Outcome]:
        """Process until nothing is runnable right now; return every outcome."""
        outcomes: list[Outcome] = []
        for _ in range(max_rounds):
            batch = await self.run_once()
            if not batch:
                break
            outcomes.extend(batch)
        return outcomes

    async def run(self) -> None:
        """Claim and process deliveries until :meth:`stop` is called."""
        if self.store is None:
            raise RuntimeError("run() needs a store")
        log.info("worker %s started (concurrency %d)", self.worker_id, self.concurrency)
        while not self._stopping:
            self.last_poll = time.monotonic()
            if time.monotonic() - self._last_prune >= PRUNE_EVERY_SECONDS:
                self._last_prune = time.monotonic()
                await self.prune()
            free = self.concurrency - len(self._running)
            claimed: list[Delivery] = []
            if free > 0:
                self._wake.clear()
                try:
                    claimed = await self.store.claim(
                        self.worker_id, limit=free, lease_seconds=self.lease_seconds
                    )
                except Exception:
                    log.exception("claiming deliveries failed; trying again in %.1fs", self.poll_interval)
            for delivery in claimed:
                task = asyncio.create_task(self.process(delivery), name=f"delivery-{delivery.id}")
                self._running.add(task)
                task.add_done_callback(self._task_done)
            if claimed and len(self._running) < self.concurrency:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)

    async def prune(self) -> int:
        """Delete done deliveries older than the retention; return how many."""
        if self.store is None:
            return 0
        try:
            removed = await self.store.prune_done(timedelta(days=self.retention_days))
        except Exception:
            log.exception("pruning old deliveries failed")
            return 0
        if removed:
            log.info("pruned %d done deliveries older than %g days", removed, self.retention_days)
        return removed

    def _task_done(self, task: asyncio.Task[Outcome]) -> None:
        self._running.discard(task)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("recording a delivery outcome failed: %r", task.exception())

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stop claiming, give running deliveries ``grace`` seconds, then cancel the rest.

        A cancelled delivery keeps its lease and is picked up again when it expires: nothing
        acknowledged is lost.
        """
        self._stopping = True
        self._wake.set()
        if self._running:
            _done, pending = await asyncio.wait(set(self._running), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
