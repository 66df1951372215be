"""Durable delivery store: SQLite (default) and PostgreSQL (scale-out)."""

from __future__ import annotations

from bot.queue.base import Delivery, DeliveryStore, Status

__all__ = ["Delivery", "DeliveryStore", "Status", "UnsupportedStoreURL", "open_store"]


class UnsupportedStoreURL(ValueError):
    """The DATABASE_URL names no store this build knows."""


def open_store(url: str) -> DeliveryStore:
    """Return an unopened store for ``url``; call ``await store.open()`` next.

    ``sqlite:///relative.db`` and ``sqlite:////absolute.db`` give a :class:`SQLiteStore`;
    ``postgresql://...`` (or ``postgres://``) gives a ``PostgresStore`` imported lazily, so
    asyncpg is loaded only when used. Anything else raises :class:`UnsupportedStoreURL`.
    """
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise UnsupportedStoreURL("sqlite URL names no file: use sqlite:///path/to.db")
        from bot.queue.sqlite import SQLiteStore

        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        from bot.queue.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]

        store: DeliveryStore = PostgresStore(url)
        return store
    raise UnsupportedStoreURL("unsupported DATABASE_URL scheme: use sqlite:///path or postgresql://...")
