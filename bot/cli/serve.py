"""``gitops-bot serve``: the webhook service, with the in-process worker unless it is off."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sqlite3
from typing import Any

from aiohttp import web

from bot.cli._service import StartupError, configure_logging, fail, settings_or_error, store_error
from bot.service.settings import SettingsError

log = logging.getLogger("bot.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (default: HOST or 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port to bind (default: PORT or 8080; 0 picks a free one)")
    parser.add_argument(
        "--worker",
        choices=["inline", "off"],
        help="run the delivery worker in this process (default: GITOPS_BOT_WORKER or inline); "
        "use off when a separate `gitops-bot worker` runs",
    )


async def serve(settings: Any, *, stop: asyncio.Event | None = None, clients: Any = None) -> None:
    """Run the app until ``stop`` is set or SIGTERM/SIGINT arrives (``clients`` as in create_app)."""
    from bot.service.app import METRICS, ClientsUnavailable, create_app, metrics_app
    from bot.service.intake import runner_options, start_listener

    try:
        app = create_app(settings, clients=clients)
    except SettingsError as exc:
        raise StartupError(str(exc)) from None
    runner = web.AppRunner(
        app, handle_signals=False, **runner_options(settings.header_timeout, settings.body_timeout)
    )
    side: web.AppRunner | None = None
    try:
        await runner.setup()
    except (SettingsError, ClientsUnavailable) as exc:
        await runner.cleanup()
        raise StartupError(str(exc)) from None
    except (OSError, sqlite3.Error, ImportError, ValueError) as exc:  # the store could not be opened
        await runner.cleanup()
        raise StartupError(store_error(settings.database_url, exc)) from None
    except Exception as exc:
        await runner.cleanup()
        raise StartupError(
            f"start-up failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        refused = app[METRICS].connections_refused
        try:
            port = await start_listener(
                runner,
                settings.host,
                settings.port,
                max_connections=settings.max_connections,
                on_refused=refused.inc,
            )
        except OSError as exc:
            raise StartupError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from None
        if settings.metrics_port is not None:
            options = runner_options(settings.header_timeout, settings.body_timeout)
            side = web.AppRunner(metrics_app(app), handle_signals=False, **options)
            await side.setup()
            try:
                metrics_port = await start_listener(
                    side, settings.host, settings.metrics_port, max_connections=64, on_refused=refused.inc
                )
            except OSError as exc:
                raise StartupError(
                    f"cannot listen on {settings.host}:{settings.metrics_port} "
                    f"(GITOPS_BOT_METRICS_PORT): {exc.strerror}"
                ) from None
            log.info("metrics on http://%s:%s/metrics", settings.host, metrics_port)
        log.info(
            "listening on http://%s:%s (worker %s, store %s)",
            settings.host,
            port,
            settings.worker,
            settings.database_url.split("://")[0],
        )
        await stop.wait()
        log.info("shutting down")
    finally:
        if side is not None:
            await side.cleanup()
        await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    import dataclasses

    try:
        settings = settings_or_error()
        overrides = {
            k: v
            for k, v in (("host", args.host), ("port", args.port), ("worker", args.worker))
            if v is not None
        }
        settings = dataclasses.replace(settings, **overrides)
        if settings.worker == "inline":
            try:
                settings.require_app_credentials()
            except Exception as exc:
                raise StartupError(
                    f"{exc} (or run with GITOPS_BOT_WORKER=off and a separate worker)"
                ) from None
        configure_logging(settings.log_level)
        asyncio.run(serve(settings))
    except StartupError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return 130
    return 0
