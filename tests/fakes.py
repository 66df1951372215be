"""A recording GitHub client for handler tests (gidgethub's own testing style).

:class:`RecordingGitHub` subclasses :class:`gidgethub.abc.GitHubAPI` and implements only
``_request``: every call is recorded, and answers come from ``responses`` keyed by
``(METHOD, path)`` (path without the host, query string kept). An unknown GET fails loudly,
as a recorded-response player should; writes without a canned answer get ``{}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import gidgethub.abc
import gidgethub.sansio


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
