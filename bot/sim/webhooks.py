"""Signed webhook deliveries, sent in the background, recorded and redeliverable like GitHub's."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import aiohttp

from bot.sim.faults import Faults
from bot.sim.state import Delivery, World, now_iso

USER_AGENT = "GitHub-Hookshot/sim"


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Deliverer:
    """Queue, send and record webhook deliveries to the App's webhook URL."""

    def __init__(self, world: World, secret: str, faults: Faults, hook_id: int = 1) -> None:
        self.world = world
        self.secret = secret
        self.faults = faults
        self.hook_id = hook_id
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._busy = 0
        self.timeout = 10.0

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._task = asyncio.create_task(self._run(), name="sim-webhooks")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session:
            await self._session.close()

    def enqueue(
        self, event: str, payload: dict[str, Any], installation_id: int | None, repository_id: int | None
    ) -> Delivery:
        """Record a delivery and queue it for sending."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        guid = str(uuid.uuid4())
        headers = {
            "Accept": "*/*",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": guid,
            "X-GitHub-Hook-ID": str(self.hook_id),
            "X-GitHub-Hook-Installation-Target-ID": str(self.world.app_id),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-Hub-Signature-256": sign(self.secret, body),
        }
        delivery = Delivery(
            id=self.world.ids.next("delivery"),
            guid=guid,
            event=event,
            action=payload.get("action") if isinstance(payload.get("action"), str) else None,
            installation_id=installation_id,
            repository_id=repository_id,
            body=body,
            headers=headers,
        )
        self.world.deliveries.append(delivery)
        self.queue.put_nowait(delivery)
        return delivery

    def redeliver(self, original: Delivery) -> Delivery:
        """Queue a new attempt of ``original`` with the same GUID and body (``redelivery: true``)."""
        copy = Delivery(
            id=self.world.ids.next("delivery"),
            guid=original.guid,
            event=original.event,
            action=original.action,
            installation_id=original.installation_id,
            repository_id=original.repository_id,
            body=original.body,
            headers=dict(original.headers),
            redelivery=True,
        )
        self.world.deliveries.append(copy)
        self.queue.put_nowait(copy)
        return copy

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Return when every queued delivery has been attempted."""
        deadline = time.monotonic() + timeout
        while not self.queue.empty() or self._busy:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.queue.qsize()} webhook deliveries still queued after {timeout}s")
            await asyncio.sleep(0.01)

    async def _run(self) -> None:
        while True:
            delivery = await self.queue.get()
            self._busy += 1
            try:
                await self._send(delivery)
            finally:
                self._busy -= 1

    async def _send(self, d: Delivery) -> None:
        d.delivered_at = now_iso()
        url = self.world.webhook_url
        rule = self.faults.pick("POST", d.event, webhook=True)
        if rule is not None:
            d.status, d.status_code = "failed to connect to host (fault injected)", 0
            return
        if not url or self._session is None:
            d.status, d.status_code = "no webhook URL configured", 0
            return
        started = time.monotonic()
        try:
            async with self._session.post(url, data=d.body, headers=d.headers) as resp:
                d.response_body = (await resp.text())[:2000]
                d.status_code = resp.status
                d.status = "OK" if 200 <= resp.status < 300 else f"Invalid HTTP Response: {resp.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            d.status, d.status_code = f"failed to connect to host ({type(exc).__name__})", 0
        finally:
            d.duration = round(time.monotonic() - started, 3)
