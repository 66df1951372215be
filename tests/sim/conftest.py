"""Fixtures for simulator tests: a webhook receiver, a running simulator and a populated world."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.sim import Driver, Simulator
from bot.sim.schemas import OpenAPI, WebhookSchemas

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"
SECRET = "test-webhook-secret"


@dataclass
class Receiver:
    """Collects webhook deliveries and checks their signature like a real receiver must."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 202

    def events(self) -> list[tuple[str, str | None]]:
        return [(r["event"], r["payload"].get("action")) for r in self.received]

    def of(self, event: str, action: str | None = None) -> list[dict[str, Any]]:
        return [
            r["payload"]
            for r in self.received
            if r["event"] == event and (action is None or r["payload"].get("action") == action)
        ]


@pytest.fixture
async def receiver(hook_schemas: WebhookSchemas) -> AsyncIterator[Receiver]:
    """A webhook endpoint; when the test ends, every payload it got must match the octokit schemas."""
    rec = Receiver()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(request.headers["X-Hub-Signature-256"], expected)
        rec.received.append(
            {
                "event": request.headers["X-GitHub-Event"],
                "headers": dict(request.headers),
                "payload": json.loads(body),
            }
        )
        return web.Response(status=rec.status)

    app = web.Application()
    app.router.add_post("/webhook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/webhook"
    yield rec
    await runner.cleanup()
    for item in rec.received:
        action = item["payload"].get("action")
        errors = hook_schemas.errors(item["event"], action, item["payload"])
        assert errors == [], (item["event"], action, errors[:5])


@pytest.fixture
async def sim(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Simulator]:
    async with Simulator(tmp_path / "sim", webhook_url=receiver.url, webhook_secret=SECRET, seed=7) as s:
        yield s


@pytest.fixture
async def driver(sim: Simulator, tmp_path: Path) -> AsyncIterator[Driver]:
    d = Driver(sim, tmp_path / "driver")
    yield d
    await d.close()


@pytest.fixture
async def world(driver: Driver) -> Driver:
    """Org ``acme`` with alice and bob (write), carol (read), repo ``acme/fleet`` with a main branch."""
    for login in ("alice", "bob", "carol"):
        driver.user(login)
    driver.org("acme", members=["alice", "bob", "carol"])
    driver.team("acme", "platform", members=["bob"], maintainers=["alice"])
    driver.repo("acme/fleet", collaborators={"alice": "write", "bob": "write", "carol": "read"})
    driver.install("acme")
    await driver.push(
        "alice",
        "acme/fleet",
        "main",
        {"README.md": "# fleet\n", "clusters/dev.yaml": "a: 1\n"},
        message="Initial commit",
    )
    return driver


class Api:
    """A small REST client for tests that checks every answer against the fixture copy of the spec."""

    def __init__(self, sim: Simulator, spec: OpenAPI) -> None:
        self.sim = sim
        self.spec = spec
        self.session = aiohttp.ClientSession()
        self.covered: set[str] = set()

    async def call(
        self,
        token: str | None,
        method: str,
        path: str,
        body: Any = None,
        expect: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, Any]:
        hdrs = {"Accept": "application/vnd.github+json", **(headers or {})}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.sim.base_url + path, json=body, headers=hdrs) as resp:
            text = await resp.text()
            data = json.loads(text) if text and resp.content_type.endswith("json") else text
            found = self.spec.find(method, path.split("?")[0])
            if found:
                op = found[0]
                self.covered.add(op.operation_id)
                schema = self.spec.response_schema(op, resp.status)
                if schema is not None and resp.content_type.endswith("json"):
                    errors = self.spec.errors(schema, data)
                    assert errors == [], f"{method} {path} -> {resp.status}: {errors[:5]}"
            if expect is not None:
                assert resp.status == expect, f"{method} {path}: {resp.status} {text[:400]}"
            return resp.status, data, resp.headers


@pytest.fixture(scope="session")
def spec() -> OpenAPI:
    return OpenAPI(FIXTURES / "rest-subset.openapi.json")


@pytest.fixture(scope="session")
def hook_schemas() -> WebhookSchemas:
    return WebhookSchemas(FIXTURES / "webhooks" / "schemas")


@pytest.fixture
async def api(sim: Simulator, spec: OpenAPI) -> AsyncIterator[Api]:
    client = Api(sim, spec)
    yield client
    await client.session.close()
