"""Crash test: `serve` is SIGKILLed at random moments under load; no acknowledged delivery is lost.

A sender plays GitHub: it posts signed deliveries with unique ids to a real ``python -m bot serve``
process (on SQLite, then on PostgreSQL), and sends again whatever got no 2xx (as GitHub's redelivery would).
Meanwhile the service is killed with SIGKILL at random moments and restarted. At the end every
delivery is in the store exactly once, byte for byte — nothing acknowledged was lost, and the
retries of deliveries that were stored but not acknowledged did not create a second copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib.util
import json
import random
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from bot.queue.base import DeliveryStore
from bot.queue.postgres import PostgresStore
from tests.hostile.serve_process import ServeProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(
        importlib.util.find_spec("bot.cli.serve") is None,
        reason="`gitops-bot serve` is not on this branch yet",
    ),
]

SECRET = b"crash-test-secret"
MAX_DELIVERIES = 20_000
KILLS = 4


def delivery(i: int) -> tuple[str, bytes]:
    body = json.dumps({"action": "synchronize", "number": i % 17, "n": i, "pad": "x" * 2000}).encode()
    return f"crash-{i:05d}", body


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Callable[[], DeliveryStore]]:
    """(DATABASE_URL, a function opening a store on it) for each store."""
    if request.param == "sqlite":
        sqlite = pytest.importorskip("bot.queue.sqlite", reason="the SQLite store is not on this branch yet")
        path = tmp_path / "crash.db"
        return f"sqlite:///{path}", lambda: sqlite.SQLiteStore(path)  # type: ignore[no-any-return]
    dsn = request.getfixturevalue("pg_dsn")
    return dsn, lambda: PostgresStore(dsn)


async def test_no_acknowledged_delivery_is_lost_across_sigkills(
    database: tuple[str, Callable[[], DeliveryStore]], tmp_path: Path
) -> None:
    url, open_store = database
    service = ServeProcess("serve", {"GITHUB_WEBHOOK_SECRET": SECRET.decode(), "DATABASE_URL": url}, tmp_path)
    acked: set[str] = set()
    failed_attempts = 0
    kills = 0
    sent = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await service.start(session)

        async def send(i: int) -> bool:
            nonlocal failed_attempts
            did, body = delivery(i)
            headers = {
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": did,
                "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest(),
                "Content-Type": "application/json",
            }
            try:
                async with session.post(f"{service.url}/webhook", data=body, headers=headers) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        acked.add(did)
                        return True
            except (aiohttp.ClientError, TimeoutError):
                pass  # not acknowledged: GitHub would redeliver it
            failed_attempts += 1
            return False

        async def killer() -> None:
            nonlocal kills
            rng = random.Random(8)
            while kills < KILLS:
                await asyncio.sleep(rng.uniform(0.2, 0.6))
                service.kill()
                kills += 1
                await service.start(session)

        async def sender(killing: asyncio.Task[None]) -> None:
            nonlocal sent
            while not killing.done() and sent < MAX_DELIVERIES:
                i = sent
                sent += 1
                if not await send(i):
                    await asyncio.sleep(0.1)  # the service is down: do not spin

        try:
            killing = asyncio.create_task(killer())
            await asyncio.gather(*(sender(killing) for _ in range(16)), killing)
            for _ in range(50):  # GitHub's redelivery of what got no 2xx
                missing = [i for i in range(sent) if delivery(i)[0] not in acked]
                if not missing:
                    break
                await asyncio.gather(*(send(i) for i in missing))
        finally:
            service.stop()

    assert kills == KILLS
    assert failed_attempts > 0, "the kills hit deliveries in flight"
    assert len(acked) == sent
    store = open_store()
    await store.open()
    try:
        counts = await store.counts()
        assert sum(counts.values()) == sent, "every delivery stored exactly once"
        for i in random.Random(1).sample(range(sent), min(sent, 50)):
            did, body = delivery(i)
            stored = await store.get(did)
            assert stored is not None and stored.payload == body
    finally:
        await store.close()
    print(
        f"\ncrash test: {sent} deliveries, {kills} SIGKILLs, {failed_attempts} unacknowledged attempts resent"
    )
