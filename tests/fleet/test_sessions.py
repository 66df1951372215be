"""Dashboard sessions: GitHub login through the simulator, the token sealed in the store,
expired sessions removed, sign-out by POST."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.domain.fleet import EnvFacts
from bot.fleet import sessions, state
from bot.fleet import web as fleet_web
from bot.queue import open_store
from bot.queue.base import DeliveryStore
from bot.sim import Driver, Simulator

SECRET = b"session-key-for-tests"
STORE: web.AppKey[DeliveryStore] = web.AppKey("store", DeliveryStore)


def test_sealed_tokens_open_only_with_their_session_and_key() -> None:
    sealed = sessions.seal(SECRET, "sid-1", "ghu_secret")
    assert "ghu_secret" not in sealed
    assert sessions.unseal(SECRET, "sid-1", sealed) == "ghu_secret"
    assert sessions.unseal(SECRET, "sid-2", sealed) is None  # another session's id
    assert sessions.unseal(b"other key", "sid-1", sealed) is None
    assert sessions.unseal(SECRET, "sid-1", sealed[:-4] + "AAAA") is None  # tampered
    assert sessions.unseal(SECRET, "sid-1", "not base64!") is None


def _dump(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT key, value FROM service_state").fetchall()
    return "\n".join(f"{k}={v}" for k, v in rows)


async def _sign_in(http: aiohttp.ClientSession, base: str, login: str) -> None:
    async with http.get(f"{base}/fleet/login", allow_redirects=False) as res:
        authorize = res.headers["Location"]
    url = urlsplit(authorize)
    query = dict(p.split("=", 1) for p in url.query.split("&"))
    form = {k: v for k, v in query.items()} | {"login": login}
    async with http.post(authorize.split("?")[0], data=form, allow_redirects=False) as res:
        callback = res.headers["Location"]
    async with http.get(callback, allow_redirects=False) as res:
        assert res.status == 302 and res.headers["Location"] == "/fleet", await res.text()


async def test_login_seals_the_token_prunes_expired_sessions_and_signs_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "s.db"
    store = open_store(f"sqlite:///{db}")
    await store.open()
    async with Simulator(tmp_path / "gh") as sim, Driver(sim, tmp_path / "d") as driver:
        driver.user("alice")
        driver.org("acme", members=[])
        driver.repo("acme/fleet", collaborators={"alice": "read"})
        await state.save_branch(store, [], EnvFacts("acme/fleet", "prod", "env/prod", "tip"))
        settings = SimpleNamespace(
            session_key=SECRET,
            oauth_client_id=sim.oauth_client_id,
            oauth_client_secret=sim.oauth_client_secret,
            web_url=sim.base_url,
            api_url=sim.base_url,
            fleet_token=None,
        )
        app = web.Application()
        app[STORE] = store
        fleet_web.add_fleet_routes(app, settings, STORE, None)  # type: ignore[arg-type]
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        base = str(server.make_url("")).rstrip("/")
        clock = [1_000_000.0]
        monkeypatch.setattr(fleet_web.time, "time", lambda: clock[0])
        try:
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as alice:
                await _sign_in(alice, base, "alice")
                async with alice.get(f"{base}/fleet.json") as res:
                    assert res.status == 200  # the sealed token opened and read the repository
                    assert [e["repo"] for e in (await res.json())["environments"]] == ["acme/fleet"]
                dump = _dump(db)
                assert "fleet:session:" in dump and "token_sealed" in dump
                assert "ghu_" not in dump and "ghu_" not in db.read_bytes().decode("latin-1")
                first = next(k for k in dump.splitlines() if k.startswith("fleet:session:")).split("=")[0]

                # eight hours later the session has expired: no data, and the next sign-in removes it
                clock[0] += fleet_web.SESSION_SECONDS + 1
                async with alice.get(f"{base}/fleet.json") as res:
                    assert res.status == 401
                async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as again:
                    await _sign_in(again, base, "alice")
                    assert await store.get_state(first) is None  # deleted, not emptied
                    sessions_now = [k for k in _dump(db).splitlines() if k.startswith("fleet:session:")]
                    assert len(sessions_now) == 1 and not sessions_now[0].startswith(first + "=")

                    # signing out is a POST (a link on another site cannot do it); the session goes
                    async with again.get(f"{base}/fleet/logout") as res:
                        assert res.status == 200 and 'method="post"' in await res.text()
                    async with again.get(f"{base}/fleet.json") as res:
                        assert res.status == 200  # a GET signed nobody out
                    async with again.post(f"{base}/fleet/logout") as res:
                        assert res.status == 200 and "Signed out" in await res.text()
                    async with again.get(f"{base}/fleet.json") as res:
                        assert res.status == 401
                    assert not [k for k in _dump(db).splitlines() if k.startswith("fleet:session:")]
        finally:
            await server.close()
            await store.close()


async def test_periodic_pass_and_legacy_plain_sessions(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    await store.open()
    try:
        await sessions.create(store, SECRET, "a", "alice", "ghu_a", now=100.0, seconds=10)
        await sessions.create(store, SECRET, "b", "bob", "ghu_b", now=105.0, seconds=10)
        assert (await sessions.load(store, SECRET, "a", 101.0) or {}).get("token") == "ghu_a"
        assert await sessions.prune(store, 112.0) == 1  # a expired at 110, b lives until 115
        assert await store.get_state(sessions.session_key("a")) is None
        assert (await sessions.load(store, SECRET, "b", 112.0) or {}).get("login") == "bob"
        # a session an older version wrote with its token in plain text is removed when seen
        key = sessions.session_key("old")
        await store.set_state(key, '{"login": "carol", "token": "ghu_plain", "expires": 999}')
        assert await sessions.load(store, SECRET, "old", 112.0) is None
        assert await store.get_state(key) is None
    finally:
        await store.close()
