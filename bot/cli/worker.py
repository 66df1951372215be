"""``gitops-bot worker``: process stored deliveries (scale-out role).

It serves no webhooks; only its probes and metrics (``GITOPS_BOT_WORKER_HEALTH_PORT``, 8081 by
default, 0 to turn off): ``/healthz`` fails when the claim loop stalls, ``/readyz`` when the
store is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

import aiohttp
from aiohttp import web

from bot.cli._service import StartupError, configure_logging, fail, open_store_or_error, settings_or_error
from bot.service.settings import SettingsError

log = logging.getLogger("bot.service.worker")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, help="deliveries processed at once (default 4)")
    parser.add_argument(
        "--drain", action="store_true", help="process what is runnable now, then exit (for cron or tests)"
    )


async def work(settings: Any, *, drain: bool = False, stop: asyncio.Event | None = None) -> int:
    """Run the worker loop until SIGTERM/SIGINT (or, with ``drain``, until nothing is runnable)."""
    from bot.prchecks.publish import rendered_env_diff
    from bot.service.app import ClientsUnavailable, default_router, github_app_clients
    from bot.service.metrics import Metrics
    from bot.service.repos import mirror_repos
    from bot.service.worker import Worker

    store = await open_store_or_error(settings.database_url)
    try:
        async with aiohttp.ClientSession() as session:
            metrics = Metrics()
            try:
                router = default_router(settings)
                clients = github_app_clients(session, settings, metrics)
                repos = mirror_repos(settings, clients)
            except (SettingsError, ClientsUnavailable) as exc:
                raise StartupError(str(exc)) from None
            worker = Worker.from_settings(
                settings,
                store,
                clients,
                router,
                repos=repos,
                metrics=metrics,
                diff_renderer=rendered_env_diff,
            )
            if drain:
                outcomes = await worker.drain()
                log.info("drained %d deliveries", len(outcomes))
                return 0
            stop = stop or asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            probes = await _start_health(settings, store, metrics, worker)
            task = asyncio.create_task(worker.run())
            reconciling = _start_reconciler(settings, store, metrics, clients, repos, stop, worker.writes)
            await stop.wait()
            if reconciling is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reconciling, timeout=10)
            log.info("stopping worker %s", worker.worker_id)
            await worker.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if probes is not None:
                await probes.cleanup()
            return 0
    finally:
        await store.close()


async def _start_health(settings: Any, store: Any, metrics: Any, worker: Any) -> web.AppRunner | None:
    """Serve /healthz, /readyz and /metrics on GITOPS_BOT_WORKER_HEALTH_PORT (0: off)."""
    if not settings.health_port:
        return None
    from bot.service.app import worker_health_app

    runner = web.AppRunner(worker_health_app(store, metrics, worker), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.health_port).start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(
            f"GITOPS_BOT_WORKER_HEALTH_PORT: cannot listen on {settings.host}:{settings.health_port} ({exc})"
        ) from None
    log.info("worker probes on http://%s:%d/healthz", settings.host, settings.health_port)
    return runner


def _start_reconciler(
    settings: Any, store: Any, metrics: Any, clients: Any, repos: Any, stop: asyncio.Event, writes: Any
) -> asyncio.Task[None] | None:
    """Run the reconciler beside this worker (GITOPS_BOT_RECONCILE_INTERVAL > 0)."""
    if settings.reconcile_interval <= 0:
        return None
    from bot.service.app import reconciler_context_factory
    from handlers.reconciler import run_reconciler

    ctx = reconciler_context_factory(settings, store, metrics, clients, repos, writes)
    return asyncio.create_task(
        run_reconciler(clients, ctx, interval=settings.reconcile_interval, stop=stop),
        name="gitops-bot-reconciler",
    )


def run(args: argparse.Namespace) -> int:
    import dataclasses

    try:
        settings = settings_or_error(webhook_secret=False)
        if args.concurrency is not None:
            if args.concurrency < 1:
                raise StartupError("--concurrency must be at least 1")
            settings = dataclasses.replace(settings, worker_concurrency=args.concurrency)
        configure_logging(settings.log_level)
        return asyncio.run(work(settings, drain=args.drain))
    except StartupError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return 130
