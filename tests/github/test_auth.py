"""App auth: JWT claims, one token request per installation while fresh, refresh after expiry."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import aiohttp
import gidgethub
import pytest

import bot.github.auth as auth_mod
from bot.github.auth import AppAuthError, GitHubApp, parse_expires_at
from tests.github.fakegh import FakeGitHub


def make_app(session: aiohttp.ClientSession, base_url: str, keypair: tuple[str, str]) -> GitHubApp:
    return GitHubApp(session, app_id="4242", private_key=keypair[0], api_url=base_url)


async def test_token_requested_once_per_installation_while_fresh(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, keypair: tuple[str, str]
) -> None:
    app = make_app(session, base_url, keypair)
    tokens = await asyncio.gather(*(app.installation_token(7) for _ in range(25)))
    assert set(tokens) == {"ghs_inst7_n1"}
    assert fake.token_calls == {7: 1}
    await app.installation_token(7)
    await app.installation_token(8)
    await app.installation_token(8)
    assert fake.token_calls == {7: 1, 8: 1}


async def test_token_requested_again_after_expiry(
    session: aiohttp.ClientSession,
    base_url: str,
    fake: FakeGitHub,
    keypair: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(session, base_url, keypair)
    assert await app.installation_token(7) == "ghs_inst7_n1"
    real_monotonic = auth_mod.time.monotonic
    # 56 minutes later the 1-hour token is inside the 5-minute refresh margin.
    monkeypatch.setattr(auth_mod.time, "monotonic", lambda: real_monotonic() + 56 * 60)
    assert await app.installation_token(7) == "ghs_inst7_n2"
    assert await app.installation_token(7) == "ghs_inst7_n2"
    assert fake.token_calls == {7: 2}


async def test_short_lived_token_refreshed_at_half_life(
    session: aiohttp.ClientSession,
    base_url: str,
    fake: FakeGitHub,
    keypair: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake.token_lifetime = timedelta(minutes=4)  # shorter than the 5-minute margin
    app = make_app(session, base_url, keypair)
    await app.installation_token(3)
    await app.installation_token(3)
    assert fake.token_calls == {3: 1}, "a token shorter-lived than the margin is still cached"
    real_monotonic = auth_mod.time.monotonic
    monkeypatch.setattr(auth_mod.time, "monotonic", lambda: real_monotonic() + 150)
    await app.installation_token(3)
    assert fake.token_calls == {3: 2}


async def test_long_token_and_client_uses_it(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, keypair: tuple[str, str]
) -> None:
    fake.token_factory = lambda inst, n: "ghs_" + "x" * 2000
    fake.script[("GET", "/repos/o/r")] = [(200, {}, {"full_name": "o/r"})]
    app = make_app(session, base_url, keypair)
    gh = await app.installation_api(9)
    assert (await gh.getitem("/repos/o/r"))["full_name"] == "o/r"
    seen = next(s for s in fake.seen if s.path == "/repos/o/r")
    assert seen.headers["Authorization"] == "token ghs_" + "x" * 2000


async def test_app_api_sends_a_valid_jwt(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, keypair: tuple[str, str]
) -> None:
    def answer(request):  # type: ignore[no-untyped-def]
        fake.check_jwt(request)
        return 200, {}, {"id": 4242}

    fake.script[("GET", "/app")] = [answer]
    app = make_app(session, base_url, keypair)
    gh = await app.app_api()
    assert (await gh.getitem("/app"))["id"] == 4242


def test_bad_private_key_names_the_setting_not_the_value(session: aiohttp.ClientSession) -> None:
    secret_looking = "-----BEGIN RSA PRIVATE KEY-----\nnot-a-key-SECRETVALUE\n-----END RSA PRIVATE KEY-----\n"
    with pytest.raises(AppAuthError) as info:
        GitHubApp(session, app_id="1", private_key=secret_looking)
    assert "GITHUB_PRIVATE_KEY" in str(info.value)
    assert "SECRETVALUE" not in str(info.value)
    with pytest.raises(AppAuthError, match="GITHUB_APP_ID"):
        GitHubApp(session, app_id=" ", private_key=secret_looking)


async def test_token_never_logged_or_shown(
    session: aiohttp.ClientSession,
    base_url: str,
    fake: FakeGitHub,
    keypair: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app(session, base_url, keypair)
    token = await app.installation_token(5)
    assert token not in caplog.text
    assert token not in repr(app) and token not in repr(app._tokens)
    assert keypair[0].splitlines()[1] not in caplog.text


async def test_token_endpoint_failure_is_an_error_not_a_cached_token(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, keypair: tuple[str, str]
) -> None:
    fake.token_factory = lambda inst, n: ""
    app = make_app(session, base_url, keypair)
    with pytest.raises(AppAuthError, match="no token for installation 6"):
        await app.installation_token(6)
    fake.token_factory = lambda inst, n: f"ok{n}"
    assert await app.installation_token(6) == "ok2"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2016-07-11T22:14:10Z", True),
        ("2016-07-11T22:14:10+00:00", True),
        ("", False),
        (None, False),
        ("x", False),
    ],
)
def test_parse_expires_at(value: object, ok: bool) -> None:
    parsed = parse_expires_at(value)
    assert (parsed is not None) == ok
    if parsed is not None:
        assert parsed.utcoffset() == timedelta(0)


async def test_revoked_token_is_replaced_once_on_401(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, keypair: tuple[str, str]
) -> None:
    def answer(request):  # type: ignore[no-untyped-def]
        if request.headers["Authorization"] == "token ghs_inst7_n1":
            return 401, {}, {"message": "Bad credentials"}
        return 201, {}, {"id": 1}

    fake.script[("POST", "/repos/o/r/issues/1/comments")] = [answer]
    app = make_app(session, base_url, keypair)
    gh = await app.installation_api(7)
    assert await gh.post("/repos/o/r/issues/1/comments", data={"body": "x"}) == {"id": 1}
    assert fake.token_calls == {7: 2}
    assert await app.installation_token(7) == "ghs_inst7_n2", "the new token is cached for the others"

    fake.script[("GET", "/repos/o/r")] = [(401, {}, {"message": "Bad credentials"})]
    gh = await app.installation_api(7)
    with pytest.raises(gidgethub.BadRequest) as info:
        await gh.getitem("/repos/o/r")
    assert info.value.status_code == 401
    assert fake.paths("GET").count("/repos/o/r") == 2, "one refresh, not a loop"
