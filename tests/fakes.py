"""A recording GitHub client for handler tests (gidgethub's own testing style).

:class:`RecordingGitHub` subclasses :class:`gidgethub.abc.GitHubAPI` and implements only
``_request``: every call is recorded, and answers come from ``responses`` keyed by
``(METHOD, path)`` (path without the host, query string kept). An unknown GET fails loudly,
as a recorded-response player should; writes without a canned answer get ``{}``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import gidgethub.abc
import gidgethub.sansio

from bot.queue.base import Delivery, DeliveryStore, Status


@dataclass
class Call:
    method: str
    path: str
    body: Any


@dataclass
class RecordingGitHub(gidgethub.abc.GitHubAPI):
    responses: dict[tuple[str, str], Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__("gitops-bot-tests", oauth_token="test-token")

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        data = json.loads(body) if body else None
        self.calls.append(Call(method, path, data))
        key = (method, path)
        if key not in self.responses:
            key = (method, parts.path)
        if key in self.responses:
            answer = self.responses[key]
            status = 200
            if isinstance(answer, tuple):
                status, answer = answer
            if callable(answer):
                answer = answer(data)
            payload = json.dumps(answer).encode()
            return status, {"content-type": "application/json; charset=utf-8"}, payload
        if method == "GET":
            raise AssertionError(f"unexpected GitHub call: {method} {path}")
        status = 201 if method == "POST" else 200
        return status, {"content-type": "application/json; charset=utf-8"}, b"{}"

    async def sleep(self, seconds: float) -> None:
        return None

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method != "GET"]


def make_event(
    event: str, payload: dict[str, Any], delivery_id: str = "test-delivery"
) -> gidgethub.sansio.Event:
    return gidgethub.sansio.Event(payload, event=event, delivery_id=delivery_id)


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
