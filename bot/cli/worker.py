"""``gitops-bot worker``: process stored deliveries without serving HTTP (scale-out role)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

import aiohttp

from bot.cli._service import StartupError, configure_logging, fail, open_store_or_error, settings_or_error
from bot.settings import SettingsError

log = logging.getLogger("bot.worker")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, help="deliveries processed at once (default 4)")
    parser.add_argument(
        "--drain", action="store_true", help="process what is runnable now, then exit (for cron or tests)"
    )


async def work(settings: Any, *, drain: bool = False, stop: asyncio.Event | None = None) -> int:
    """Run the worker loop until SIGTERM/SIGINT (or, with ``drain``, until nothing is runnable)."""
    from bot.app import ClientsUnavailable, default_router, github_app_clients
    from bot.metrics import Metrics
    from bot.repos import mirror_repos
    from bot.worker import Worker

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
            worker = Worker.from_settings(settings, store, clients, router, repos=repos, metrics=metrics)
            if drain:
                outcomes = await worker.drain()
                log.info("drained %d deliveries", len(outcomes))
                return 0
            stop = stop or asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            task = asyncio.create_task(worker.run())
            await stop.wait()
            log.info("stopping worker %s", worker.worker_id)
            await worker.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return 0
    finally:
        await store.close()


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
