"""Fixtures for the service tests: settings, a real SQLite store, signed requests, fake clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.queue.sqlite import SQLiteStore
from bot.service.app import create_app
from bot.service.settings import Settings
from bot.service.webhook import sign
from tests.support.github import FakeGitHub

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "github" / "webhooks" / "examples"
SECRET = b"test-webhook-secret"


def example_files() -> list[Path]:
    """Every example payload file, sorted."""
    return sorted(EXAMPLES.rglob("*.json"))


def example(event: str, name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / event / name).read_text())


def signed_headers(body: bytes, event: str, delivery: str, secret: bytes = SECRET) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(secret, body),
        "Content-Type": "application/json",
    }


@dataclass
class FakeClients:
    """A GitHubClients that hands out one FakeGitHub per installation."""

    responses: dict[tuple[str, str], Any] = field(default_factory=dict)
    apis: dict[int, FakeGitHub] = field(default_factory=dict)
    fail_with: Exception | None = None

    async def installation_api(self, installation_id: int) -> FakeGitHub:
        if self.fail_with is not None:
            raise self.fail_with
        if installation_id not in self.apis:
            self.apis[installation_id] = FakeGitHub(responses=self.responses)
        return self.apis[installation_id]

    async def installation_token(self, installation_id: int) -> str:
        return "not-a-real-token"

    async def app_api(self) -> FakeGitHub:
        return FakeGitHub(responses=self.responses)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "deliveries.db"


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return Settings(
        webhook_secret=SECRET,
        database_url=f"sqlite:///{db_path}",
        data_dir=db_path.parent / "data",  # never the default .gitops-bot of the working tree
        worker="off",
        poll_interval=0.05,
        backoff_base=0.01,
        backoff_cap=0.05,
    )


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(db_path)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """A test client of the app with the worker off (deliveries stay pending)."""
    app = create_app(settings)
    async with TestClient(TestServer(app)) as c:
        yield c


PostFn = Callable[..., Any]


@pytest.fixture
def post(client: TestClient[Any, Any]) -> PostFn:
    async def _post(payload: dict[str, Any] | bytes, event: str, delivery: str, **headers: str) -> Any:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h = signed_headers(body, event, delivery)
        h.update(headers)
        return await client.post("/webhook", data=body, headers=h)

    return _post
