"""Attacks on the webhook intake (issue 13 item 3), played against a real ``gitops-bot serve``.

Each test is one attack from a client on the network, with raw sockets where a well-behaved
HTTP client would not send what an attacker does.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.service.webhook import sign
from tests.hostile.serve_process import ServeProcess, free_port

pytestmark = pytest.mark.slow

SECRET = "intake-secret"
METRICS_TOKEN = "metrics-token-for-tests"
PAYLOAD = json.dumps({"action": "opened", "repository": {"full_name": "acme/fleet"}}).encode()


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[ServeProcess]:
    env = {
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "GITOPS_BOT_HEADER_TIMEOUT": "1",
        "GITOPS_BOT_BODY_TIMEOUT": "1",
        "GITOPS_BOT_MAX_CONNECTIONS": "16",
        "GITOPS_BOT_METRICS_TOKEN": METRICS_TOKEN,
    }
    process = ServeProcess("intake", env, tmp_path, worker="off")
    async with aiohttp.ClientSession() as session:
        await process.start(session)
    try:
        yield process
    finally:
        process.stop()


def headers(
    event: str = "pull_request", delivery: str | None = None, body: bytes = PAYLOAD
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(SECRET.encode(), body),
    }


async def post(serve: ServeProcess, body: bytes = PAYLOAD, **kwargs: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{serve.url}/webhook", data=body, headers=headers(body=body, **kwargs)) as resp,
    ):
        return resp.status


async def metrics(serve: ServeProcess, url: str | None = None, token: str | None = METRICS_TOKEN) -> str:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(url or f"{serve.url}/metrics", headers=auth) as resp,
    ):
        assert resp.status == 200, resp.status
        return await resp.text()


async def raw_request(serve: ServeProcess, head: bytes, body: bytes = b"") -> bytes:
    """Send ``head`` and ``body`` on a fresh socket; return the whole answer (until the server closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
    writer.write(head + body)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


async def test_a_compressed_body_is_refused_before_it_is_inflated(serve: ServeProcess) -> None:
    # A gzip bomb: 20 MB of JSON whitespace in 20 KB, signed over what it inflates to, so an
    # intake that inflated it would accept it (and hold it all in memory first).
    inflated = b"{" + b" " * 20_000_000 + b'"action": "opened"}'
    bomb = gzip.compress(inflated, compresslevel=9)
    head = (
        b"POST /webhook HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\nConnection: close\r\n"
        b"X-GitHub-Event: pull_request\r\nX-GitHub-Delivery: " + str(uuid.uuid4()).encode() + b"\r\n"
        b"X-Hub-Signature-256: " + sign(SECRET.encode(), inflated).encode() + b"\r\n"
        b"Content-Length: " + str(len(bomb)).encode() + b"\r\n\r\n"
    )
    answer = await raw_request(serve, head, bomb)
    assert answer.startswith(b"HTTP/1.1 415 "), answer[:200]
    assert b"compressed bodies are not accepted" in answer
    text = await metrics(serve)
    assert 'gitops_bot_deliveries_total{event="unverified",outcome="compressed"} 1.0' in text
    assert "accepted" not in text
    assert await post(serve) == 202  # the next good delivery is stored


async def test_slow_clients_are_cut_off_and_cannot_exhaust_connections(serve: ServeProcess) -> None:
    # Slowloris: headers one byte every 0.2 s, never finished. The header timeout (1 s) closes it.
    reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
    started = time.monotonic()
    closed_after: float | None = None
    for byte in (
        b"POST /webhook HTTP/1.1\r\nHost: bot\r\nX-GitHub-Event: pull_request\r\nX-Long: " + b"a" * 100
    ):
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            closed_after = time.monotonic() - started
            break
        if reader.at_eof() or (await _eof_within(reader, 0.2)):
            closed_after = time.monotonic() - started
            break
    writer.close()
    assert closed_after is not None and closed_after < 5, "a slow header sender kept its connection"

    # A slow body: full headers, then half the body and silence. The body timeout answers 408.
    body = PAYLOAD
    head = (
        b"POST /webhook HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
        b"X-GitHub-Event: pull_request\r\nX-GitHub-Delivery: slow-body\r\n"
        b"X-Hub-Signature-256: " + sign(SECRET.encode(), body).encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    answer = await raw_request(serve, head, body[: len(body) // 2])
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]

    # Many idle connections: past the limit (16) a new one is refused at once, and once the
    # header timeout has closed the idle ones, a good delivery gets through.
    idle = [await asyncio.open_connection("127.0.0.1", serve.port) for _ in range(16)]
    await asyncio.sleep(0.2)
    refused = await raw_request(serve, b"GET /healthz HTTP/1.1\r\nHost: bot\r\n\r\n")
    assert refused.startswith(b"HTTP/1.1 503 "), refused[:200]
    await asyncio.sleep(1.5)
    assert await post(serve) == 202
    for _, w in idle:
        w.close()
    assert "gitops_bot_connections_refused_total 1.0" in await metrics(serve)


async def _eof_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), timeout=seconds) == b""
    except TimeoutError:
        return False


BAD_IDS = [b"\xc3\xa9t\xc3\xa9-caf\xc3\xa9", b"id with spaces", b"../../etc", b"a\x01b", b"a" * 201]


async def test_a_bad_delivery_id_gets_400_and_good_deliveries_around_it_succeed(serve: ServeProcess) -> None:
    for bad_id in BAD_IDS:  # non-ASCII, spaces, slashes, a control character, too long
        head = (
            b"POST /webhook HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"X-GitHub-Event: pull_request\r\nX-GitHub-Delivery: " + bad_id + b"\r\n"
            b"X-Hub-Signature-256: " + sign(SECRET.encode(), PAYLOAD).encode() + b"\r\n"
            b"Content-Length: " + str(len(PAYLOAD)).encode() + b"\r\n\r\n"
        )
        good = [post(serve) for _ in range(6)]
        answers = await asyncio.gather(*good[:3], raw_request(serve, head, PAYLOAD), *good[3:])
        bad = answers.pop(3)
        assert isinstance(bad, bytes) and bad[:12] in {b"HTTP/1.1 400", b"HTTP/1.0 400"}, (bad_id, bad[:300])
        assert answers == [202] * 6, bad_id
    text = await metrics(serve)
    assert f'outcome="accepted"}} {6.0 * len(BAD_IDS)}' in text


async def test_unknown_event_names_fold_into_one_metrics_label(serve: ServeProcess) -> None:
    # Signed deliveries with made-up event names (a leaked secret, or GitHub adding events).
    statuses = [await post(serve, event=f"made_up_{i}") for i in range(50)]
    assert statuses == [202] * 50
    text = await metrics(serve)
    assert "made_up" not in text
    assert 'gitops_bot_deliveries_total{event="other",outcome="accepted"} 50.0' in text


async def test_metrics_need_the_bearer_token(serve: ServeProcess) -> None:
    async with aiohttp.ClientSession() as session:
        for auth in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {METRICS_TOKEN}"}):
            async with session.get(f"{serve.url}/metrics", headers=auth) as resp:
                assert resp.status == 401
                assert "gitops_bot" not in await resp.text()
    assert "gitops_bot_deliveries" in await metrics(serve)


async def test_metrics_can_move_to_their_own_port(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "GITOPS_BOT_METRICS_PORT": str(port),
    }
    process = ServeProcess("metrics-port", env, tmp_path, worker="off")
    async with aiohttp.ClientSession() as session:
        await process.start(session)
        try:
            async with session.get(f"{process.url}/metrics") as resp:
                assert resp.status == 404
            assert await post(process) == 202
            text = await metrics(process, f"http://127.0.0.1:{port}/metrics", token=None)
            assert 'outcome="accepted"} 1.0' in text
        finally:
            process.stop()
