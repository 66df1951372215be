"""``gitops-bot deliveries`` and ``gitops-bot replay`` (in-process through bot.__main__.main)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import main
from bot.queue.sqlite import SQLiteStore
from tests.service.conftest import EXAMPLES


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "d.db"

    async def fill() -> None:
        s = SQLiteStore(path)
        await s.open()
        for i in range(4):
            await s.put(f"id-{i}", "pull_request", b"{}", action="opened")
        claimed = await s.claim("w", limit=3)
        await s.complete(claimed[0].id, "w")
        await s.fail(claimed[1].id, "w", "RuntimeError: GitHub said no", None)
        await s.fail(claimed[2].id, "w", "TimeoutError", None)
        await s.close()

    asyncio.run(fill())
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET", raising=False)
    return path


def test_deliveries_json_counts_each_status(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deliveries", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"] == {"pending": 1, "processing": 0, "done": 1, "failed": 0, "dead": 2}
    assert sorted(d["id"] for d in data["dead"]) == ["id-1", "id-2"]
    assert {d["last_error"] for d in data["dead"]} == {"RuntimeError: GitHub said no", "TimeoutError"}
    assert len(data["recent"]) == 4


def test_deliveries_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deliveries"]) == 0
    out = capsys.readouterr().out
    assert "dead              2" in out
    assert "error: RuntimeError: GitHub said no" in out
    assert "gitops-bot deliveries retry --dead" in out


def test_retry_one_and_all_dead(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deliveries", "retry", "id-1"]) == 0
    assert "id-1 put back to pending" in capsys.readouterr().out
    assert main(["deliveries", "retry", "id-0"]) == 1
    assert "is done; only failed or dead" in capsys.readouterr().err
    assert main(["deliveries", "retry", "nope"]) == 1
    assert "no delivery 'nope'" in capsys.readouterr().err
    assert main(["deliveries", "retry", "--dead", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"retried": 1}
    assert main(["deliveries", "retry"]) == 2
    assert "either a delivery ID or --dead" in capsys.readouterr().err
    main(["deliveries", "--json"])
    assert json.loads(capsys.readouterr().out)["counts"]["pending"] == 3


def test_deliveries_without_a_store_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/missing.db")
    assert main(["deliveries"]) == 2
    assert "no delivery store at" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_PRIVATE_KEY_PATH", "GITHUB_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITOPS_BOT_HANDLERS", "pull_request")


def test_replay_dry_run_prints_every_write_offline(offline: None, capsys: pytest.CaptureFixture[str]) -> None:
    payload = EXAMPLES / "pull_request" / "synchronize.payload.json"
    code = main(
        ["replay", "--event", "pull_request", "--payload", str(payload), "--dry-run", "--delivery-id", "r1"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "replaying pull_request.synchronize as delivery r1: pull_request_changed" in out
    assert "POST /repos/Codertocat/Hello-World/check-runs\n{" in out
    assert '"name": "gitops-bot"' in out
    assert "POST /repos/Codertocat/Hello-World/issues/2/comments" in out
    assert "<!-- gitops-bot:sticky -->" in out
    assert "dry run: 2 write(s) printed, none made" in out


def test_replay_of_an_event_without_handlers(offline: None, capsys: pytest.CaptureFixture[str]) -> None:
    payload = EXAMPLES / "status" / "payload.json"
    assert main(["replay", "--event", "status", "--payload", str(payload), "--dry-run"]) == 0
    assert "no handler runs for status; nothing to do" in capsys.readouterr().out


def test_replay_without_credentials_and_without_dry_run_says_what_to_do(
    offline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = EXAMPLES / "pull_request" / "opened.payload.json"
    assert main(["replay", "--event", "pull_request", "--payload", str(payload)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gitops-bot: error: GITHUB_APP_ID is not set") and "--dry-run" in err


def test_replay_of_a_broken_file(offline: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert main(["replay", "--event", "push", "--payload", str(bad), "--dry-run"]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    assert main(["replay", "--event", "push", "--payload", str(tmp_path / "none.json"), "--dry-run"]) == 2
    assert "cannot be read" in capsys.readouterr().err


async def test_dry_run_client_sends_gets_to_the_real_client_and_prints_writes() -> None:
    from bot.cli.replay import DryRunGitHub
    from tests.support.github import FakeGitHub

    real = FakeGitHub(responses={("GET", "/repos/o/r/pulls/1"): {"number": 1, "title": "t"}})
    printed: list[str] = []
    gh = DryRunGitHub(real, out=printed.append)
    assert (await gh.getitem("/repos/o/r/pulls/1"))["title"] == "t"
    created = await gh.post("/repos/o/r/issues/1/comments", data={"body": "hi"})
    await gh.patch(f"/repos/o/r/issues/comments/{created['id']}", data={"body": "hi again"})
    await gh.delete("/repos/o/r/git/refs/heads/x")
    assert [c.method for c in real.calls] == ["GET"]  # no write reached the real client
    assert printed[0] == "POST /repos/o/r/issues/1/comments"
    assert json.loads(printed[1]) == {"body": "hi"}
    assert printed[2] == f"PATCH /repos/o/r/issues/comments/{created['id']}"
    assert printed[-1] == "DELETE /repos/o/r/git/refs/heads/x"
    assert [w[0] for w in gh.writes] == ["POST", "PATCH", "DELETE"]


async def test_offline_dry_run_answers_lists_and_404s() -> None:
    import gidgethub

    from bot.cli.replay import DryRunGitHub

    gh = DryRunGitHub(None, out=lambda _: None)
    assert [c async for c in gh.getiter("/repos/o/r/issues/1/comments")] == []
    assert (await gh.getitem("/repos/o/r/commits/abc/check-runs"))["check_runs"] == []
    with pytest.raises(gidgethub.BadRequest) as info:
        await gh.getitem("/repos/o/r/contents/clusters/a.yaml")
    assert info.value.status_code == 404


async def test_worker_command_drains_pending_deliveries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.service.app
    from bot.cli.worker import work
    from bot.queue.base import Status
    from bot.service.settings import load_settings
    from tests.service.conftest import example
    from tests.support.github import FakeGitHub

    gh = FakeGitHub()

    class Clients:
        async def installation_api(self, installation_id: int) -> FakeGitHub:
            return gh

    monkeypatch.setattr(
        bot.service.app, "github_app_clients", lambda session, settings, metrics=None: Clients()
    )
    import bot.service.repos
    from bot.service.repos import UnavailableRepoAccess

    # No git mirror in this test: the handler writes its status check and comment only.
    monkeypatch.setattr(bot.service.repos, "mirror_repos", lambda settings, clients: UnavailableRepoAccess())
    settings = load_settings(
        {"DATABASE_URL": f"sqlite:///{tmp_path}/w.db", "GITOPS_BOT_HANDLERS": "pull_request"},
        require_webhook_secret=False,
    )
    store = SQLiteStore(tmp_path / "w.db")
    await store.open()
    payload = example("pull_request", "opened.payload.json")
    await store.put("p1", "pull_request", json.dumps(payload).encode(), installation_id=1, ordering_key="k")
    await store.close()
    assert await work(settings, drain=True) == 0
    store = SQLiteStore(tmp_path / "w.db")
    await store.open()
    assert (await store.get("p1")).status is Status.DONE  # type: ignore[union-attr]
    await store.close()
    assert len(gh.comments) == 1 and len(gh.check_runs) == 1


async def test_worker_command_runs_the_reconciler_beside_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.service.app
    from bot.cli.worker import work
    from bot.service.settings import load_settings
    from tests.support.github import FakeGitHub

    gh = FakeGitHub(
        responses={("GET", "/repos/o/a/installation"): {"id": 5}, ("GET", "/repos/o/a/pulls"): []}
    )
    asked = asyncio.Event()

    class Clients:
        async def app_api(self) -> FakeGitHub:
            return gh

        async def installation_api(self, installation_id: int) -> FakeGitHub:
            asked.set()
            return gh

    monkeypatch.setattr(
        bot.service.app, "github_app_clients", lambda session, settings, metrics=None: Clients()
    )
    settings = load_settings(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
            "GITOPS_BOT_RECONCILE_REPOS": "o/a",
            "GITOPS_BOT_RECONCILE_INTERVAL": "3600",
            "GITOPS_BOT_WORKER_HEALTH_PORT": "0",
        },
        require_webhook_secret=False,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(work(settings, stop=stop))
    await asyncio.wait_for(asked.wait(), 30)
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0
    paths = [c.path for c in gh.calls]
    assert "/repos/o/a/installation" in paths
    assert any(p.startswith("/repos/o/a/pulls") for p in paths)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_worker_command_serves_probes_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiohttp

    import bot.service.app
    import bot.service.repos
    from bot.cli.worker import work
    from bot.service.repos import UnavailableRepoAccess
    from bot.service.settings import load_settings
    from bot.service.worker import Worker

    class Clients:
        async def installation_api(self, installation_id: int) -> None:
            raise AssertionError("no delivery in this test")

    monkeypatch.setattr(
        bot.service.app, "github_app_clients", lambda session, settings, metrics=None: Clients()
    )
    monkeypatch.setattr(bot.service.repos, "mirror_repos", lambda settings, clients: UnavailableRepoAccess())
    port = _free_port()
    settings = load_settings(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
            "HOST": "127.0.0.1",
            "GITOPS_BOT_WORKER_HEALTH_PORT": str(port),
            "GITOPS_BOT_RECONCILE_INTERVAL": "0",
            "GITOPS_BOT_POLL_INTERVAL": "0.05",
        },
        require_webhook_secret=False,
    )
    started: list[Worker] = []
    real_from_settings = Worker.from_settings

    def keep(*args: Any, **kwargs: Any) -> Worker:
        worker = real_from_settings(*args, **kwargs)
        started.append(worker)
        return worker

    monkeypatch.setattr(Worker, "from_settings", keep)
    stop = asyncio.Event()
    task = asyncio.create_task(work(settings, stop=stop))
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(200):  # wait for the probes to listen and the loop to go round once
            try:
                async with http.get(f"{base}/healthz") as resp:
                    live = await resp.json()
                    if resp.status == 200 and live["seconds_since_last_poll"] is not None:
                        break
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
        assert live["status"] == "ok"
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "ready"
        async with http.get(f"{base}/metrics") as resp:
            text = await resp.text()
            assert resp.status == 200 and 'gitops_bot_queue_depth{status="pending"} 0.0' in text
    assert started and started[0].last_poll is not None
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0


async def test_worker_liveness_fails_when_the_claim_loop_stalls(tmp_path: Path) -> None:
    import time

    import gidgethub.routing
    from aiohttp.test_utils import TestClient, TestServer

    from bot.service.app import STALL_MIN_SECONDS, worker_health_app
    from bot.service.metrics import Metrics
    from bot.service.worker import Worker

    store = SQLiteStore(tmp_path / "h.db")
    await store.open()
    worker = Worker(store, None, gidgethub.routing.Router(), poll_interval=1.0)
    client = TestClient(TestServer(worker_health_app(store, Metrics(), worker)))
    await client.start_server()
    try:
        resp = await client.get("/healthz")  # not started yet: alive, nothing to judge
        assert resp.status == 200 and (await resp.json())["seconds_since_last_poll"] is None
        worker.last_poll = time.monotonic() - 5
        assert (await client.get("/healthz")).status == 200
        worker.last_poll = time.monotonic() - STALL_MIN_SECONDS - 1
        resp = await client.get("/healthz")
        body = await resp.json()
        assert resp.status == 503 and body["status"] == "stalled" and body["limit"] == STALL_MIN_SECONDS
        await store.close()
        resp = await client.get("/readyz")
        assert resp.status == 503 and (await resp.json())["status"] == "store unreachable"
    finally:
        await client.close()
