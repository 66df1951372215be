"""A tiny scripted GitHub on a real aiohttp server (port 0) for client, auth and redelivery tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

Answer = tuple[int, dict[str, str], Any]


def make_private_key() -> tuple[str, str]:
    """Return a fresh (private PEM, public PEM) RSA pair."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeGitHub:
    """Answers from ``script[(METHOD, path)]``: a list of answers consumed in order (the last repeats)."""

    public_key: str
    app_id: str = "4242"
    token_factory: Callable[[int, int], str] = lambda inst, n: f"ghs_inst{inst}_n{n}"
    token_lifetime: timedelta = timedelta(hours=1)
    script: dict[tuple[str, str], list[Answer | Callable[[web.Request], Answer]]] = field(
        default_factory=dict
    )
    seen: list[Seen] = field(default_factory=list)
    token_calls: dict[int, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    delay: float = 0.0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def check_jwt(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        assert scheme.lower() == "bearer", "App routes need the App JWT"
        claims = jwt.decode(token, self.public_key, algorithms=["RS256"])
        now = time.time()
        assert claims["iss"] == self.app_id
        assert claims["iat"] <= now - 30, "iat must be backdated for clock drift"
        assert claims["exp"] - claims["iat"] <= 600, "GitHub refuses JWTs valid over 10 minutes"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(request.method, request.path, request.query_string, dict(request.headers), body)
        )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if request.method == "POST" and request.path.startswith("/app/installations/"):
                self.check_jwt(request)
                inst = int(request.path.split("/")[3])
                n = self.token_calls[inst] = self.token_calls.get(inst, 0) + 1
                expires = (datetime.now(UTC) + self.token_lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
                return web.json_response(
                    {"token": self.token_factory(inst, n), "expires_at": expires}, status=201
                )
            key = (request.method, request.path)
            answers = self.script.get(key)
            if not answers:
                return web.json_response({"message": f"no script for {key}"}, status=404)
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
            if callable(answer):
                answer = answer(request)
            status, headers, payload = answer
            if payload == "DROP":
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            ctype = (
                "text/html; charset=utf-8" if isinstance(payload, str) else "application/json; charset=utf-8"
            )
            text = payload if isinstance(payload, str) else json.dumps(payload)
            hdrs = {"content-type": ctype, **headers}
            return web.Response(status=status, text=None if status == 304 else text, headers=hdrs)
        finally:
            self.in_flight -= 1

    def paths(self, method: str | None = None) -> list[str]:
        return [s.path for s in self.seen if method is None or s.method == method]


@asynccontextmanager
async def serve(fake: FakeGitHub) -> AsyncIterator[str]:
    """Run ``fake`` on a free port; yield its base URL."""
    server = TestServer(fake.app(), port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
