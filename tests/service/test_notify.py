"""A dead letter about a pull request is told on the pull request, and cleared after a success."""

from __future__ import annotations

import json
from typing import Any

import gidgethub.routing

from bot.queue.sqlite import SQLiteStore
from bot.service.notify import dead_letter_body, pull_request_of
from bot.service.worker import Worker
from tests.support.github import FakeGitHub


class Clients:
    def __init__(self) -> None:
        self.gh = FakeGitHub()

    async def installation_api(self, installation_id: int) -> FakeGitHub:
        return self.gh


def _pr(action: str) -> bytes:
    return json.dumps(
        {
            "action": action,
            "installation": {"id": 1},
            "repository": {"full_name": "o/r"},
            "pull_request": {"number": 4},
        }
    ).encode()


def test_pull_request_of() -> None:
    assert pull_request_of("o/r#4") == ("o/r", 4)
    assert pull_request_of("o/r#x") is None
    assert pull_request_of(None) is None
    assert pull_request_of("nope#4") is None


async def test_a_dead_letter_is_told_on_the_pull_request_then_cleared(store: SQLiteStore) -> None:
    router = gidgethub.routing.Router()
    broken = {"on": True}

    @router.register("pull_request")
    async def render(event: Any, gh: Any, ctx: Any) -> None:
        if broken["on"]:
            raise ConnectionError("token=ghs_secret leaked in a message")

    clients = Clients()
    worker = Worker(store, clients, router, worker_id="w", max_attempts=2, backoff_base=0, backoff_cap=0)
    await store.put("d1", "pull_request", _pr("opened"), installation_id=1, ordering_key="o/r#4")
    assert [o.status for o in await worker.drain()] == ["retry", "dead"]
    (comment,) = clients.gh.comments.values()
    body = comment["body"]
    assert body.startswith("<!-- gitops-bot:error -->\n### :warning: gitops-bot could not finish")
    assert "| `tests.service.test_notify." in body and "| `ConnectionError` |" in body
    assert "gitops-bot deliveries retry d1" in body and "`/validate`" in body
    assert "ghs_secret" not in body

    broken["on"] = False
    await store.put("d2", "pull_request", _pr("synchronize"), installation_id=1, ordering_key="o/r#4")
    assert [o.status for o in await worker.drain()] == ["done"]
    assert clients.gh.comments == {}
    # Nothing left to clear: the next success does not even list comments.
    calls = len(clients.gh.calls)
    await store.put("d3", "pull_request", _pr("edited"), installation_id=1, ordering_key="o/r#4")
    await worker.drain()
    assert len(clients.gh.calls) == calls


def test_a_delivery_that_failed_before_any_handler() -> None:
    from datetime import UTC, datetime

    from bot.queue.base import Delivery, Status

    d = Delivery("d9", "pull_request", None, b"", 1, "o/r#4", Status.DEAD, 1, datetime.now(UTC))
    body = dead_letter_body(d, [], "stored payload is not JSON: Expecting value")
    assert "failed before any check ran" in body
    assert "Expecting value" not in body
