"""POST /webhook: signatures, bad input, size limit, ping, durable store, duplicates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.queue.base import Status
from bot.service.webhook import installation_id, ordering_key, sign, signature_ok
from tests.service.conftest import EXAMPLES, SECRET, PostFn, example, example_files, signed_headers


async def _count(client: TestClient[Any, Any]) -> int:
    from bot.service.app import STORE

    counts = await client.app[STORE].counts()
    return sum(counts.values())


@pytest.mark.parametrize("path", example_files(), ids=lambda p: str(p.relative_to(EXAMPLES)))
async def test_every_example_payload_is_accepted_with_a_valid_signature(
    client: TestClient[Any, Any], path: Path
) -> None:
    from bot.service.app import STORE

    body = path.read_bytes()
    event = path.parent.name
    resp = await client.post("/webhook", data=body, headers=signed_headers(body, event, f"d-{path.name}"))
    if event == "ping":
        assert resp.status == 200
        assert await _count(client) == 0
        return
    assert resp.status == 202, await resp.text()
    stored = await client.app[STORE].get(f"d-{path.name}")
    assert stored is not None
    assert stored.event == event
    assert stored.payload == body
    assert stored.status is Status.PENDING
    assert stored.action == json.loads(body).get("action")


@pytest.mark.parametrize("path", example_files(), ids=lambda p: str(p.relative_to(EXAMPLES)))
async def test_every_example_payload_is_rejected_without_a_valid_signature(
    client: TestClient[Any, Any], path: Path
) -> None:
    original = path.read_bytes()
    for signature in ("missing", "wrong-secret", "tampered", "sha1", "empty"):
        body = original
        headers = signed_headers(body, path.parent.name, f"d-{signature}")
        if signature == "missing":
            del headers["X-Hub-Signature-256"]
        elif signature == "wrong-secret":
            headers["X-Hub-Signature-256"] = sign(b"another-secret", body)
        elif signature == "tampered":
            body = body.replace(b"{", b"{ ", 1)
        elif signature == "sha1":
            headers["X-Hub-Signature-256"] = "sha1=" + "0" * 40
        else:
            headers["X-Hub-Signature-256"] = ""
        resp = await client.post("/webhook", data=body, headers=headers)
        assert resp.status == 401, signature
        assert "X-Hub-Signature-256" in (await resp.json())["message"]
    assert await _count(client) == 0
    metrics = await (await client.get("/metrics")).text()
    assert 'gitops_bot_deliveries_total{event="unverified",outcome="bad_signature"} 5.0' in metrics


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[1, 2, 3]",
        b'"a string"',
        b"\xff\xfe\x00garbage",
        b'{"action": "opened"',
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"installation": ' + b'{"x": ' * 5_000 + b"1" + b"}" * 5_000 + b"}",
    ],
    ids=["broken", "empty", "array", "string", "binary", "truncated", "deep-array", "deep-object"],
)
async def test_corrupted_bodies_get_400_and_nothing_is_stored(
    client: TestClient[Any, Any], post: PostFn, body: bytes
) -> None:
    resp = await post(body, "pull_request", "d-corrupt")
    assert resp.status == 400
    assert "malformed payload" in (await resp.json())["message"]
    assert await _count(client) == 0


@pytest.mark.parametrize("header", ["X-GitHub-Event", "X-GitHub-Delivery"])
async def test_missing_github_headers_get_400(client: TestClient[Any, Any], header: str) -> None:
    body = json.dumps(example("pull_request", "opened.payload.json")).encode()
    headers = signed_headers(body, "pull_request", "d-1")
    del headers[header]
    resp = await client.post("/webhook", data=body, headers=headers)
    assert resp.status == 400
    assert header in (await resp.json())["message"]
    assert await _count(client) == 0


async def test_headers_are_case_insensitive(client: TestClient[Any, Any]) -> None:
    body = json.dumps(example("push", "payload.json")).encode()
    headers = {k.lower(): v for k, v in signed_headers(body, "push", "d-lower").items()}
    resp = await client.post("/webhook", data=body, headers=headers)
    assert resp.status == 202


async def test_a_body_over_25_mb_gets_413(client: TestClient[Any, Any]) -> None:
    body = b'{"pad": "' + b"x" * (25 * 1024 * 1024) + b'"}'
    resp = await client.post("/webhook", data=body, headers=signed_headers(body, "push", "d-big"))
    assert resp.status == 413
    assert await _count(client) == 0


async def test_a_chunked_body_over_25_mb_gets_413(client: TestClient[Any, Any]) -> None:
    chunk = b"x" * (1024 * 1024)

    async def body() -> Any:
        yield b'{"pad": "'
        for _ in range(26):
            yield chunk
        yield b'"}'

    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-chunked", "X-Hub-Signature-256": "sha256=00"}
    resp = await client.post("/webhook", data=body(), headers=headers)
    assert resp.status == 413
    assert await _count(client) == 0


async def test_a_body_just_under_the_limit_is_accepted(client: TestClient[Any, Any]) -> None:
    payload = example("push", "payload.json")
    payload["pad"] = "x" * (25 * 1024 * 1024 - len(json.dumps(payload)) - 20)
    body = json.dumps(payload).encode()
    assert len(body) < 25 * 1024 * 1024
    resp = await client.post("/webhook", data=body, headers=signed_headers(body, "push", "d-almost"))
    assert resp.status == 202


async def test_ping_gets_200_and_is_not_stored(client: TestClient[Any, Any], post: PostFn) -> None:
    resp = await post(example("ping", "payload.json"), "ping", "d-ping")
    assert resp.status == 200
    assert (await resp.json())["message"] == "pong"
    assert await _count(client) == 0


async def test_duplicate_delivery_ids_are_acknowledged_and_stored_once(
    client: TestClient[Any, Any], post: PostFn
) -> None:
    payload = example("pull_request", "opened.payload.json")
    first = await post(payload, "pull_request", "same-id")
    second = await post(payload, "pull_request", "same-id")
    assert first.status == 202
    assert second.status == 200
    assert (await second.json())["status"] == "duplicate"
    assert await _count(client) == 1


async def test_form_encoded_deliveries_are_accepted(client: TestClient[Any, Any]) -> None:
    from urllib.parse import urlencode

    from bot.service.app import STORE

    payload = example("push", "payload.json")
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = signed_headers(body, "push", "d-form")
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    resp = await client.post("/webhook", data=body, headers=headers)
    assert resp.status == 202
    stored = await client.app[STORE].get("d-form")
    assert stored is not None and json.loads(stored.payload) == payload


async def test_healthz_readyz_and_metrics(client: TestClient[Any, Any], post: PostFn) -> None:
    await post(example("push", "payload.json"), "push", "d-m1")
    await post(b"{", "push", "d-m2")
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"
    text = await (await client.get("/metrics")).text()
    assert 'gitops_bot_deliveries_total{event="push",outcome="accepted"} 1.0' in text
    assert 'gitops_bot_deliveries_total{event="push",outcome="bad_request"} 1.0' in text
    assert 'gitops_bot_queue_depth{status="pending"} 1.0' in text
    assert "gitops_bot_ack_seconds_bucket" in text


async def test_readyz_is_503_when_the_store_is_gone(client: TestClient[Any, Any]) -> None:
    from bot.service.app import STORE

    await client.app[STORE].close()
    resp = await client.get("/readyz")
    assert resp.status == 503


async def test_a_store_failure_answers_503_not_2xx(client: TestClient[Any, Any], post: PostFn) -> None:
    from bot.service.app import STORE

    await client.app[STORE].close()
    resp = await post(example("push", "payload.json"), "push", "d-lost")
    assert resp.status == 503
    assert "redeliver" in (await resp.json())["message"]


def test_signature_check_fails_closed() -> None:
    body = b"{}"
    assert signature_ok(SECRET, body, sign(SECRET, body))
    assert not signature_ok(b"", body, sign(b"", body))
    assert not signature_ok(SECRET, body, None)
    assert not signature_ok(SECRET, body, "sha256=")
    assert not signature_ok(SECRET, body, sign(SECRET, body).upper())
    assert not signature_ok(SECRET, body, "sha256=\u00e9" * 3)


def test_the_handler_refuses_to_exist_without_a_secret() -> None:
    from bot.service.webhook import WebhookHandler

    with pytest.raises(ValueError, match="secret is required"):
        WebhookHandler(b"", lambda: None)  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize(
    ("event", "file", "key"),
    [
        ("pull_request", "opened.payload.json", "Codertocat/Hello-World#2"),
        ("pull_request_review", "submitted.payload.json", "Codertocat/Hello-World#2"),
        ("pull_request_review_comment", "created.payload.json", "Codertocat/Hello-World#2"),
        ("issue_comment", "created.payload.json", None),
        ("push", "payload.json", None),
        ("status", "payload.json", None),
        ("installation", "created.payload.json", None),
    ],
)
def test_ordering_key(event: str, file: str, key: str | None) -> None:
    assert ordering_key(event, example(event, file)) == key


def test_ordering_key_of_a_comment_on_a_pull_request_and_of_linked_checks() -> None:
    comment = example("issue_comment", "created.payload.json")
    comment["issue"]["pull_request"] = {"url": "https://api.github.com/repos/o/r/pulls/1"}
    assert (
        ordering_key("issue_comment", comment)
        == f"{comment['repository']['full_name']}#{comment['issue']['number']}"
    )
    run = example("check_run", "created.payload.json")
    run["check_run"]["pull_requests"] = [{"number": 7}]
    assert ordering_key("check_run", run) == f"{run['repository']['full_name']}#7"
    run["check_run"]["pull_requests"] = []
    assert ordering_key("check_run", run) is None
    assert ordering_key("pull_request", {"repository": "not an object"}) is None


def test_installation_id() -> None:
    assert installation_id({"installation": {"id": 42}}) == 42
    assert installation_id({"installation": {"id": "42"}}) is None
    assert installation_id({}) is None
