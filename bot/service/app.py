"""The aiohttp application factory: routes, typed state and clean-up contexts.

``create_app(settings)`` opens the delivery store, an HTTP session and the GitHub App clients
in ``cleanup_ctx`` (so tear-down mirrors start-up), and runs the in-process worker when
``settings.worker == "inline"``. Start-up never contacts GitHub: the App clients fetch tokens
only when a delivery needs one.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from typing import cast

import aiohttp
import gidgethub.routing
from aiohttp import web

from bot.github.types import GitHubClients
from bot.github.writes import GitHubWrites
from bot.prchecks.publish import rendered_env_diff
from bot.queue import open_store
from bot.queue.base import DeliveryStore, Status
from bot.service.context import HandlerContext, RepoAccess
from bot.service.metrics import Metrics
from bot.service.repos import mirror_repos, outside_delivery_access
from bot.service.settings import Settings, SettingsError
from bot.service.webhook import WebhookHandler
from bot.service.worker import Worker, process_writes

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", DeliveryStore)
METRICS = web.AppKey("metrics", Metrics)
SESSION = web.AppKey("session", aiohttp.ClientSession)
CLIENTS = web.AppKey("clients", GitHubClients)
WORKER = web.AppKey("worker", Worker)


class ClientsUnavailable(RuntimeError):
    """The GitHub App client module cannot be loaded."""


def github_app_clients(
    session: aiohttp.ClientSession, settings: Settings, metrics: Metrics | None = None
) -> GitHubClients:
    """Build the real GitHub App clients (imported lazily; needs GITHUB_APP_ID and a private key)."""
    settings.require_app_credentials()
    from bot.github.auth import GitHubApp

    clients: GitHubClients = GitHubApp(
        session,
        app_id=str(settings.app_id),
        private_key=str(settings.private_key),
        api_url=settings.api_url,
        metrics=metrics,
    )
    return clients


def default_router(settings: Settings | None = None) -> gidgethub.routing.Router:
    """Return the combined router of the modules under ``handlers/`` (all, or GITOPS_BOT_HANDLERS)."""
    import handlers

    if settings is None or not settings.handlers:
        return handlers.ROUTER
    try:
        return handlers.combined_router(settings.handlers)
    except KeyError as exc:
        raise SettingsError(
            f"GITOPS_BOT_HANDLERS names {exc.args[0]!r}, which is not a handler module: "
            f"use some of {', '.join(handlers.available())}"
        ) from None


def create_app(
    settings: Settings,
    *,
    store: DeliveryStore | None = None,
    clients: GitHubClients | Callable[[aiohttp.ClientSession], GitHubClients] | None = None,
    repos: RepoAccess | Callable[[int | None], RepoAccess] | None = None,
    router: gidgethub.routing.Router | None = None,
    metrics: Metrics | None = None,
) -> web.Application:
    """Return the web application for ``settings``.

    ``store`` defaults to ``open_store(settings.database_url)`` (opened and closed by the app;
    a given store is opened too, and closed). ``clients`` is a GitHubClients object or a factory
    taking the app's ClientSession; by default the GitHub App built from the settings, and only
    when the in-process worker runs. ``repos`` is the git access handed to handlers: a RepoAccess
    or a factory taking the installation id; by default mirrors under GITOPS_BOT_DATA_DIR.
    """
    app = web.Application(client_max_size=settings.max_body_bytes + 1024)
    app[SETTINGS] = settings
    app[METRICS] = metrics if metrics is not None else Metrics()
    the_router = router if router is not None else default_router(settings)

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        s = store if store is not None else open_store(settings.database_url)
        await s.open()
        app[STORE] = s
        yield
        await s.close()

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            app[SESSION] = session
            made: GitHubClients | None = None
            if clients is None:
                if settings.worker == "inline":
                    made = github_app_clients(session, settings, app[METRICS])
            elif hasattr(clients, "installation_api"):
                made = cast(GitHubClients, clients)
            else:
                made = clients(session)
            if made is not None:
                app[CLIENTS] = made
            yield

    async def worker_ctx(app: web.Application) -> AsyncIterator[None]:
        if settings.worker != "inline":
            log.info("in-process worker is off; run `gitops-bot worker` to process deliveries")
            yield
            return
        clients_ = app.get(CLIENTS)
        worker = Worker.from_settings(
            settings,
            app[STORE],
            clients_,
            the_router,
            repos=repos if repos is not None else mirror_repos(settings, clients_),
            metrics=app[METRICS],
            diff_renderer=rendered_env_diff,
        )
        app[WORKER] = worker
        task = asyncio.create_task(worker.run(), name="gitops-bot-worker")
        yield
        await worker.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.cleanup_ctx.extend([store_ctx, session_ctx, worker_ctx])
    reconciler = reconciler_ctx(settings, repos)
    if reconciler is not None:
        app.cleanup_ctx.append(reconciler)
    if settings.worker == "inline":
        # Missed deliveries: list the App's hook deliveries and redeliver the failed ones.
        from bot.service import redeliver

        app.cleanup_ctx.append(redeliver.cleanup_ctx(CLIENTS, STORE, interval=settings.redeliver_interval))

    def wake() -> None:
        worker = app.get(WORKER)
        if worker is not None:
            worker.wake()

    handler = WebhookHandler(
        settings.webhook_secret,
        lambda: app[STORE],
        metrics=app[METRICS],
        on_stored=wake,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout,
    )
    app.router.add_post("/webhook", handler.handle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if settings.metrics_port is None:
        app.router.add_get("/metrics", metrics_view)
    from bot.fleet.web import add_fleet_routes

    add_fleet_routes(app, settings, STORE, app[METRICS])
    return app


def metrics_app(app: web.Application) -> web.Application:
    """``/metrics`` of ``app`` on its own listener (``GITOPS_BOT_METRICS_PORT``)."""
    own = web.Application()
    own[SETTINGS] = app[SETTINGS]
    own[METRICS] = app[METRICS]

    async def view(request: web.Request) -> web.Response:
        return await metrics_response(request, app[METRICS], app.get(STORE))

    own.router.add_get("/metrics", view)
    return own


def reconciler_context_factory(
    settings: Settings,
    store: DeliveryStore,
    metrics: Metrics | None,
    clients: GitHubClients | None,
    repos: RepoAccess | Callable[[int | None], RepoAccess] | None,
    writes: GitHubWrites | None = None,
) -> Callable[[], HandlerContext]:
    """Return the HandlerContext factory of reconciler passes (git access resolved per repository).

    ``writes`` is the in-process worker's (so its deliveries and reconciler passes share locks).
    """
    the_writes = writes if writes is not None else process_writes(store, settings)
    access = outside_delivery_access(settings, clients, repos)

    def ctx() -> HandlerContext:
        return HandlerContext(
            repos=access,
            store=store,
            metrics=metrics,
            settings=settings,
            delivery_id="reconciler",
            bot_login=settings.bot_login,
            diff_renderer=rendered_env_diff,
            writes=the_writes,
        )

    return ctx


def reconciler_ctx(
    settings: Settings, repos: RepoAccess | Callable[[int | None], RepoAccess] | None
) -> Callable[[web.Application], AsyncIterator[None]] | None:
    """Return the clean-up context running the reconciler, or None when it is off.

    It runs with the in-process worker only (a web-only process has no App clients) every
    ``GITOPS_BOT_RECONCILE_INTERVAL`` seconds (0 turns it off).
    """
    if settings.worker != "inline" or settings.reconcile_interval <= 0:
        return None
    from handlers.reconciler import reconciler_context

    def make_ctx(app: web.Application) -> Callable[[], HandlerContext]:
        worker = app.get(WORKER)
        return reconciler_context_factory(
            settings,
            app[STORE],
            app[METRICS],
            app.get(CLIENTS),
            repos,
            worker.writes if worker is not None else None,
        )

    context: Callable[[web.Application], AsyncIterator[None]] = reconciler_context(
        lambda app: app.get(CLIENTS), make_ctx, interval=settings.reconcile_interval
    )
    return context


async def healthz(request: web.Request) -> web.Response:
    """Answer 200 while the process is alive."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Answer 200 when the delivery store answers, else 503."""
    store = request.app.get(STORE)
    ok = store is not None and await store.ping()
    return web.json_response({"status": "ready" if ok else "store unreachable"}, status=200 if ok else 503)


#: The worker is live while its claim loop has gone round within this many poll intervals
#: (and at least this many seconds: a busy event loop may delay one round).
STALL_POLLS = 10
STALL_MIN_SECONDS = 30.0


def worker_health_app(store: DeliveryStore, metrics: Metrics, worker: Worker) -> web.Application:
    """The ``gitops-bot worker`` probe and metrics endpoints (``GITOPS_BOT_WORKER_HEALTH_PORT``).

    ``/healthz`` answers 503 when the claim loop has not gone round for
    max(STALL_POLLS x poll interval, STALL_MIN_SECONDS); ``/readyz`` and ``/metrics`` are the
    web process's (store reachable; Prometheus text with this worker's handler and GitHub
    figures, which only the worker sees).
    """
    app = web.Application()
    app[STORE] = store
    app[METRICS] = metrics
    if worker.settings is not None:
        app[SETTINGS] = worker.settings
    limit = max(STALL_POLLS * worker.poll_interval, STALL_MIN_SECONDS)

    async def live(request: web.Request) -> web.Response:
        stalled = worker.stalled_for()
        if stalled is not None and stalled > limit:
            body = {"status": "stalled", "seconds_since_last_poll": round(stalled, 1), "limit": limit}
            return web.json_response(body, status=503)
        waited = None if stalled is None else round(stalled, 1)
        return web.json_response({"status": "ok", "seconds_since_last_poll": waited})

    app.router.add_get("/healthz", live)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app


def metrics_allowed(request: web.Request) -> bool:
    """True unless ``GITOPS_BOT_METRICS_TOKEN`` is set and the request lacks that bearer token."""
    settings = request.app.get(SETTINGS)
    token = getattr(settings, "metrics_token", None)
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), token.encode("utf-8")
    )


async def metrics_view(request: web.Request) -> web.Response:
    """Return Prometheus metrics; the queue-depth gauge is refreshed from the store first."""
    return await metrics_response(request, request.app[METRICS], request.app.get(STORE))


async def metrics_response(
    request: web.Request, metrics: Metrics, store: DeliveryStore | None
) -> web.Response:
    """The body of :func:`metrics_view` for ``metrics`` and ``store``.

    With ``GITOPS_BOT_METRICS_TOKEN`` set, only a request with ``Authorization: Bearer <token>``
    gets them; others get 401.
    """
    if not metrics_allowed(request):
        return web.json_response(
            {"message": "/metrics needs Authorization: Bearer <GITOPS_BOT_METRICS_TOKEN>"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    if store is not None:
        try:
            counts = await store.counts()
        except Exception:
            log.exception("could not read queue depth for /metrics")
        else:
            for status in Status:
                metrics.queue_depth.labels(status=status.value).set(counts.get(status, 0))
    return web.Response(
        body=metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )
