"""Start-up helpers shared by the service commands (serve, worker, deliveries, replay)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping

from bot.queue.base import DeliveryStore
from bot.service.settings import Settings, SettingsError, load_settings


class StartupError(Exception):
    """Start-up cannot continue; ``str(exc)`` is the one line to print."""


def fail(message: str) -> int:
    """Print ``gitops-bot: error: <message>`` on stderr and return exit status 2."""
    print(f"gitops-bot: error: {message}", file=sys.stderr)
    return 2


def settings_or_error(env: Mapping[str, str] | None = None, *, webhook_secret: bool = True) -> Settings:
    """Load settings; raise StartupError with the one-line reason when they are broken."""
    try:
        return load_settings(env, require_webhook_secret=webhook_secret)
    except SettingsError as exc:
        raise StartupError(str(exc)) from None


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr as ``time level logger: message`` (never with secrets: callers take care)."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def store_error(url: str, exc: BaseException) -> str:
    """Return the one-line reason a store could not be opened (the URL's password hidden)."""
    import re

    shown = re.sub(r"//[^@/]*@", "//***@", url)
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"DATABASE_URL={shown!r} cannot be opened: {detail}"


async def open_store_or_error(url: str) -> DeliveryStore:
    """Open the store at ``url``; raise StartupError with one line when it cannot be opened."""
    from bot.queue import open_store

    try:
        store = open_store(url)
        await store.open()
    except Exception as exc:
        raise StartupError(store_error(url, exc)) from None
    return store
