"""A delivery store that keeps only service state (all the reconciler and records use)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from bot.queue.base import Delivery, DeliveryStore, Status


class StateStore(DeliveryStore):
    """A delivery store that only keeps service state (all the reconciler uses)."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.writes = 0

    async def get_state(self, key: str) -> str | None:
        return self.state.get(key)

    async def set_state(self, key: str, value: str) -> None:
        self.writes += 1
        self.state[key] = value

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool:
        return True

    async def put(self, delivery_id: str, event: str, payload: bytes, **kw: Any) -> bool:
        raise NotImplementedError

    async def claim(self, worker_id: str, *, limit: int = 1, lease_seconds: float = 300.0) -> list[Delivery]:
        raise NotImplementedError

    async def complete(self, delivery_id: str, worker_id: str) -> None:
        raise NotImplementedError

    async def fail(self, delivery_id: str, worker_id: str, error: str, retry_at: datetime | None) -> None:
        raise NotImplementedError

    async def retry(self, delivery_id: str) -> bool:
        raise NotImplementedError

    async def retry_dead(self) -> int:
        raise NotImplementedError

    async def get(self, delivery_id: str) -> Delivery | None:
        raise NotImplementedError

    async def counts(self) -> dict[Status, int]:
        raise NotImplementedError

    async def recent(self, *, status: Status | None = None, limit: int = 20) -> list[Delivery]:
        raise NotImplementedError

    async def extend_lease(self, delivery_id: str, worker_id: str, lease_seconds: float) -> bool:
        raise NotImplementedError

    async def prune_done(self, older_than: timedelta) -> int:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def advisory_lock(self, key: str) -> AsyncIterator[None]:
        yield
