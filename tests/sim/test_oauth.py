"""The simulator's OAuth web flow and GET /user behave as GitHub documents them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp

from bot.sim import Driver, Simulator

CALLBACK = "http://127.0.0.1:9/fleet/oauth/callback"


async def test_web_flow_code_for_token_and_user(tmp_path: Path) -> None:
    async with Simulator(tmp_path / "gh") as sim, Driver(sim, tmp_path / "d") as driver:
        driver.user("alice")
        base = sim.base_url
        async with aiohttp.ClientSession() as http:
            query = {"client_id": sim.oauth_client_id, "redirect_uri": CALLBACK, "state": "s1"}
            async with http.get(f"{base}/login/oauth/authorize", params=query) as res:
                assert res.status == 200 and 'id="login_field"' in await res.text()
            async with http.get(f"{base}/login/oauth/authorize", params=query | {"client_id": "nope"}) as res:
                assert res.status == 404
            async with http.post(
                f"{base}/login/oauth/authorize", data=query | {"login": "nobody"}, allow_redirects=False
            ) as res:
                assert res.status == 200 and "Incorrect username" in await res.text()
            async with http.post(
                f"{base}/login/oauth/authorize", data=query | {"login": "alice"}, allow_redirects=False
            ) as res:
                assert res.status == 302
                target = urlsplit(res.headers["Location"])
            back = parse_qs(target.query)
            assert target.path == "/fleet/oauth/callback" and back["state"] == ["s1"]
            code = back["code"][0]
            form = {
                "client_id": sim.oauth_client_id,
                "client_secret": "wrong",
                "code": code,
                "redirect_uri": CALLBACK,
            }
            json_accept = {"Accept": "application/json"}
            async with http.post(f"{base}/login/oauth/access_token", data=form, headers=json_accept) as res:
                assert res.status == 200 and (await res.json())["error"] == "incorrect_client_credentials"
            form["client_secret"] = sim.oauth_client_secret
            async with http.post(f"{base}/login/oauth/access_token", data=form, headers=json_accept) as res:
                answer = await res.json()
            assert answer["token_type"] == "bearer" and answer["access_token"].startswith("ghu_")
            async with http.post(f"{base}/login/oauth/access_token", data=form) as res:
                # a code is single use; without Accept: application/json the answer is form-encoded
                assert res.content_type == "application/x-www-form-urlencoded"
                assert parse_qs(await res.text())["error"] == ["bad_verification_code"]
            auth = {"Authorization": f"Bearer {answer['access_token']}"}
            async with http.get(f"{base}/user", headers=auth) as res:
                user = await res.json()
            assert res.status == 200 and user["login"] == "alice" and user["type"] == "User"
            async with http.get(f"{base}/user") as res:
                assert res.status == 401
            # the user token reads what alice may read, and no more
            driver.org("acme", members=[])
            driver.repo("acme/private")
            async with http.get(f"{base}/repos/acme/private", headers=auth) as res:
                assert res.status == 404
