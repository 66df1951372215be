"""A killed service loses nothing it acknowledged: real processes, SIGKILL, restart, completion.

Phase 1: ``python -m bot serve`` with the worker off acknowledges deliveries; SIGKILL.
Phase 2: restarted with the worker on, against a fake GitHub that hangs on the first comment;
SIGKILL while that delivery is being processed.
Phase 3: restarted again (short lease): every acknowledged delivery completes, exactly the
expected GitHub writes are made, and ``gitops-bot deliveries --json`` agrees.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.service.conftest import SECRET, example, signed_headers

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class FakeGitHub:
    """Just enough of GitHub for the pull_request handler; can hang on the first comment."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.hang = False
        self.hanging = asyncio.Event()
        self.release = asyncio.Event()
        self.next_id = 1000
        self.comments: dict[str, list[dict[str, Any]]] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        self.calls.append((request.method, path))
        self.next_id += 1
        if request.method == "POST" and re.fullmatch(r"/app/installations/\d+/access_tokens", path):
            return web.json_response({"token": "ghs_fake", "expires_at": "2099-01-01T00:00:00Z"}, status=201)
        if request.method == "GET" and path.endswith("/check-runs"):
            return web.json_response({"total_count": 0, "check_runs": []})
        if request.method == "POST" and path.endswith("/check-runs"):
            return web.json_response(
                {"id": self.next_id, "html_url": f"https://x/runs/{self.next_id}"}, status=201
            )
        if path.endswith("/comments"):
            if request.method == "GET":
                return web.json_response(self.comments.get(path, []))
            if self.hang:
                self.hanging.set()
                await self.release.wait()
                return web.json_response({"message": "too late"}, status=500)
            body = await request.json()
            comment = {
                "id": self.next_id,
                "body": body["body"],
                "user": {"login": "gitops-bot[bot]", "type": "Bot"},
            }
            self.comments.setdefault(path, []).append(comment)
            return web.json_response(comment, status=201)
        return web.json_response({"message": "Not Found"}, status=404)


@pytest.fixture
async def fake_github() -> AsyncIterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield fake, f"http://127.0.0.1:{port}"
    fake.release.set()
    await runner.cleanup()


def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class Service:
    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url


async def _start(env: dict[str, str], *, worker: str) -> Service:
    full = {**env, "GITOPS_BOT_WORKER": worker}
    if worker == "off" or importlib.util.find_spec("bot.github.auth") is not None:
        cmd = [sys.executable, "-m", "bot", "serve"]
    else:  # the App client lands in another branch; same serve path with a fixed token
        cmd = [sys.executable, str(ROOT / "tests" / "service" / "serve_with_static_token.py")]
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=ROOT, env=full, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    lines = []
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        lines.append(line)
        if not line:
            raise AssertionError("serve exited:\n" + "".join(lines))
        if m := re.search(r"listening on (http://\S+)", line):
            url = m[1].replace("0.0.0.0", "127.0.0.1").replace("127.0.0.1:0", "")
            asyncio.get_running_loop().create_task(_drain(proc))
            return Service(proc, url)


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stderr is not None
    while await proc.stderr.readline():
        pass


async def _kill(service: Service) -> None:
    service.proc.send_signal(signal.SIGKILL)
    assert await service.proc.wait() == -signal.SIGKILL


async def _deliveries(env: dict[str, str]) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "deliveries", "--json", "--limit", "50", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    data: dict[str, Any] = json.loads(out)
    return data


async def test_a_killed_service_processes_what_was_pending_after_restart(
    tmp_path: Path, fake_github: tuple[FakeGitHub, str]
) -> None:
    fake, api_url = fake_github
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "GITHUB_WEBHOOK_SECRET": SECRET.decode(),
        "GITHUB_APP_ID": "1",
        "GITHUB_PRIVATE_KEY": _pem(),
        "GITHUB_API_URL": api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "HOST": "127.0.0.1",
        "PORT": "0",
        "GITOPS_BOT_POLL_INTERVAL": "0.1",
        "GITOPS_BOT_LEASE_SECONDS": "2",
        # Only the handler this fake GitHub serves; the others need a git mirror and more API.
        "GITOPS_BOT_HANDLERS": "pull_request",
        "GITOPS_BOT_GIT_MIRROR": "off",  # the fake GitHub serves no git: status check and comment only
    }
    opened = example("pull_request", "opened.payload.json")
    bodies: dict[str, tuple[str, bytes]] = {}
    for n in range(1, 6):
        p = copy.deepcopy(opened)
        p["number"] = p["pull_request"]["number"] = n
        bodies[f"pr-{n}"] = ("pull_request", json.dumps(p).encode())
    bodies["push-1"] = ("push", json.dumps(example("push", "payload.json")).encode())

    # Phase 1: acknowledge with the worker off, then SIGKILL.
    service = await _start(env, worker="off")
    async with aiohttp.ClientSession() as http:
        for delivery, (event, body) in bodies.items():
            resp = await http.post(
                f"{service.url}/webhook", data=body, headers=signed_headers(body, event, delivery)
            )
            assert resp.status == 202, await resp.text()
    await _kill(service)
    assert (await _deliveries(env))["counts"]["pending"] == 6

    # Phase 2: worker on, GitHub hangs on the first comment; SIGKILL mid-delivery.
    fake.hang = True
    service = await _start(env, worker="inline")
    await asyncio.wait_for(fake.hanging.wait(), 30)
    await _kill(service)
    counts = (await _deliveries(env))["counts"]
    assert counts["processing"] >= 1 and counts["done"] < 6

    # Phase 3: restart; the expired lease and the pending ones all complete.
    fake.hang = False
    service = await _start(env, worker="inline")
    for _ in range(300):
        data = await _deliveries(env)
        if data["counts"]["done"] == 6:
            break
        await asyncio.sleep(0.1)
    service.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(service.proc.wait(), 30) == 0
    assert data["counts"] == {"pending": 0, "processing": 0, "done": 6, "failed": 0, "dead": 0}
    # Each pull request got exactly one sticky comment, even the one interrupted mid-write.
    assert sorted(fake.comments) == [
        f"/repos/Codertocat/Hello-World/issues/{n}/comments" for n in range(1, 6)
    ]
    assert all(len(c) == 1 for c in fake.comments.values())
