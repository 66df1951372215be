"""The whole app in one process: webhook in, in-process worker, handlers, GitHub writes out."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.queue.base import Status
from bot.service.app import CLIENTS, STORE, WORKER, create_app
from bot.service.settings import Settings
from tests.service.conftest import example, signed_headers
from tests.support.github import FakeGitHub, make_event


class OneClient:
    def __init__(self) -> None:
        self.gh = FakeGitHub()
        self.installations: list[int] = []

    async def installation_api(self, installation_id: int) -> FakeGitHub:
        self.installations.append(installation_id)
        return self.gh

    async def installation_token(self, installation_id: int) -> str:
        return "unused"

    async def app_api(self) -> FakeGitHub:
        return self.gh


async def _wait_done(client: TestClient[Any, Any], n: int) -> dict[Status, int]:
    for _ in range(200):
        counts = await client.app[STORE].counts()
        if counts[Status.DONE] >= n:
            return counts
        await asyncio.sleep(0.02)
    raise AssertionError(f"not done: {counts}")


async def test_webhook_to_check_run_and_sticky_comment(settings: Settings) -> None:
    clients = OneClient()
    from bot.service.repos import UnavailableRepoAccess

    app = create_app(  # no git mirror: the handler writes its status check and comment only
        dataclasses.replace(settings, worker="inline", handlers=("pull_request",)),
        clients=clients,
        repos=UnavailableRepoAccess(),
    )
    async with TestClient(TestServer(app)) as client:
        assert client.app[CLIENTS] is clients and client.app[WORKER] is not None
        payload = example("pull_request", "opened.payload.json")
        for delivery in ("d1", "d1", "d2"):  # a duplicate, then GitHub sending the event again
            body = json.dumps(payload).encode()
            resp = await client.post(
                "/webhook", data=body, headers=signed_headers(body, "pull_request", delivery)
            )
            assert resp.status in (200, 202)
        counts = await _wait_done(client, 2)
        assert counts[Status.DONE] == 2 and counts[Status.PENDING] == 0
        text = await (await client.get("/metrics")).text()
    assert clients.installations == [payload["installation"]["id"]] * 2
    assert len(clients.gh.comments) == 1 and len(clients.gh.check_runs) == 1
    assert 'gitops_bot_deliveries_total{event="pull_request",outcome="done"} 2.0' in text
    assert 'gitops_bot_deliveries_total{event="pull_request",outcome="duplicate"} 1.0' in text
    assert "gitops_bot_processing_seconds_count" in text
    assert f"gitops_bot_github_rate_limit_remaining {clients.gh.remaining}.0" in text


async def test_a_factory_gets_the_app_session(settings: Settings) -> None:
    seen: list[Any] = []

    def factory(session: Any) -> OneClient:
        seen.append(session)
        return OneClient()

    app = create_app(dataclasses.replace(settings, worker="inline"), clients=factory)
    async with TestClient(TestServer(app)):
        assert len(seen) == 1 and not seen[0].closed
    assert seen[0].closed


async def test_serve_with_the_worker_off_needs_no_app_credentials(settings: Settings) -> None:
    app = create_app(settings)
    async with TestClient(TestServer(app)) as client:
        assert CLIENTS not in client.app and WORKER not in client.app


def test_handlers_can_be_narrowed_and_unknown_ones_are_named(settings: Settings) -> None:
    from bot.service.app import default_router
    from bot.service.settings import SettingsError

    narrowed = default_router(dataclasses.replace(settings, handlers=("pull_request",)))
    event = make_event("pull_request", example("pull_request", "opened.payload.json"))
    assert [h.__name__ for h in narrowed.fetch(event)] == ["pull_request_changed"]
    with pytest.raises(
        SettingsError, match=r"^GITOPS_BOT_HANDLERS names 'nope', which is not a handler module"
    ):
        create_app(dataclasses.replace(settings, handlers=("pull_request", "nope")))


async def test_the_inline_worker_without_credentials_refuses_to_start(settings: Settings) -> None:
    from bot.service.settings import SettingsError

    app = create_app(dataclasses.replace(settings, worker="inline"))
    with pytest.raises(SettingsError, match="GITHUB_APP_ID"):
        async with TestClient(TestServer(app)):
            pass


def test_the_reconciler_runs_only_beside_the_in_process_worker(settings: Settings) -> None:
    from bot.service.app import reconciler_ctx

    inline = dataclasses.replace(settings, worker="inline")
    assert reconciler_ctx(inline, None) is not None
    assert reconciler_ctx(settings, None) is None  # worker off: a web-only process
    assert reconciler_ctx(dataclasses.replace(inline, reconcile_interval=0), None) is None


def test_reconciler_settings() -> None:
    from bot.service.settings import SettingsError, load_settings

    s = load_settings(
        {"GITOPS_BOT_RECONCILE_REPOS": "o/a, o/b", "GITOPS_BOT_RECONCILE_INTERVAL": "60"},
        require_webhook_secret=False,
    )
    assert s.reconcile_repositories == ("o/a", "o/b") and s.reconcile_interval == 60
    with pytest.raises(SettingsError, match=r"^GITOPS_BOT_RECONCILE_REPOS holds 'nope'"):
        load_settings({"GITOPS_BOT_RECONCILE_REPOS": "nope"}, require_webhook_secret=False)
