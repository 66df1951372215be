"""GitHub's OAuth web flow for a GitHub App's client, and ``GET /user``, as GitHub documents them.

- ``GET /login/oauth/authorize?client_id&redirect_uri&state[&login]``: GitHub's sign-in and
  authorize page. Here a form asks which simulated user signs in (``login`` pre-fills it);
  ``POST`` of that form redirects to ``redirect_uri?code=...&state=...``. An unknown
  ``client_id`` gets GitHub's 404 page; a ``redirect_uri`` on another host than the one
  registered (:attr:`OAuthRoutes.oauth_callback_url`, when set) is refused.
- ``POST /login/oauth/access_token`` (form or JSON; ``Accept: application/json`` for JSON,
  else ``application/x-www-form-urlencoded``): trades a code (single use, ten minutes) for a
  user access token ``ghu_...``. Errors answer 200 with ``error``, ``error_description`` and
  ``error_uri``, as GitHub does (``bad_verification_code``, ``incorrect_client_credentials``,
  ``redirect_uri_mismatch``).
- ``GET /user``: the signed-in user (a user token; 401 otherwise), shaped as GitHub's
  ``public-user`` plus the private fields GitHub adds for the token's owner.

See https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-user-access-token-for-a-github-app
"""

from __future__ import annotations

import html
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from bot.sim.core import SimCore
from bot.sim.state import Token

ERROR_URI = (
    "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"
)
CODE_TTL = 600.0


@dataclass
class _Code:
    login: str
    client_id: str
    redirect_uri: str
    expires: float


class OAuthRoutes(SimCore):
    """The OAuth web-flow pages and ``GET /user``."""

    oauth_callback_url: str | None = None

    @property
    def oauth_client_id(self) -> str:
        if not hasattr(self, "_oauth_client"):
            self._oauth_client = ("Iv23" + secrets.token_hex(8), secrets.token_hex(20))
        return self._oauth_client[0]

    @property
    def oauth_client_secret(self) -> str:
        self.oauth_client_id  # noqa: B018 (creates the pair)
        return self._oauth_client[1]

    def _codes(self) -> dict[str, _Code]:
        if not hasattr(self, "_oauth_codes"):
            self._oauth_codes: dict[str, _Code] = {}
        return self._oauth_codes

    async def _oauth(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/login/oauth/authorize":
            return await self._authorize(request)
        if path == "/login/oauth/access_token" and request.method == "POST":
            return await self._access_token(request)
        if path == "/user" and request.method == "GET":
            return self._user(request)
        return web.Response(status=404, text="Not Found")

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        params: dict[str, str] = dict(request.query)
        if request.method == "POST":
            params |= {k: str(v) for k, v in (await request.post()).items()}
        client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
        if client_id != self.oauth_client_id:
            return web.Response(status=404, text="Not Found", content_type="text/html")
        if (
            self.oauth_callback_url
            and urlsplit(redirect_uri).netloc != urlsplit(self.oauth_callback_url).netloc
        ):
            return web.Response(
                status=400,
                text="The redirect_uri is not associated with this application.",
                content_type="text/html",
            )
        login = params.get("login", "")
        if request.method == "POST":
            if login not in self.world.users or login == self.bot_login:
                return self._sign_in_page(params, "Incorrect username or password.")
            code = secrets.token_hex(10)
            self._codes()[code] = _Code(login, client_id, redirect_uri, time.time() + CODE_TTL)
            query = urlencode({"code": code, "state": params.get("state", "")})
            raise web.HTTPFound(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{query}")
        return self._sign_in_page(params, "")

    def _sign_in_page(self, params: dict[str, str], error: str) -> web.Response:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
            if k in ("client_id", "redirect_uri", "state")
        )
        text = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Sign in to GitHub (simulator)</title></head>
<body><h1>Sign in to GitHub</h1><p>to continue to the gitops-bot App (simulated GitHub)</p>
{f'<p role="alert">{html.escape(error)}</p>' if error else ""}
<form method="post" action="/login/oauth/authorize">{hidden}
<label>Username <input name="login" id="login_field" value="{html.escape(params.get("login", ""))}"></label>
<button type="submit" name="authorize" value="1">Authorize</button></form></body></html>"""
        return web.Response(text=text, content_type="text/html", status=200)

    async def _access_token(self, request: web.Request) -> web.StreamResponse:
        if request.content_type == "application/json":
            form: dict[str, Any] = dict(await request.json())
        else:
            form = {k: str(v) for k, v in (await request.post()).items()}
        wants_json = "application/json" in request.headers.get("Accept", "")

        def answer(body: dict[str, str]) -> web.Response:
            if wants_json:
                return web.json_response(body)
            return web.Response(text=urlencode(body), content_type="application/x-www-form-urlencoded")

        def error(code: str, description: str) -> web.Response:
            return answer(
                {"error": code, "error_description": description, "error_uri": f"{ERROR_URI}#{code}"}
            )

        if (
            form.get("client_id") != self.oauth_client_id
            or form.get("client_secret") != self.oauth_client_secret
        ):
            return error(
                "incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect."
            )
        found = self._codes().pop(str(form.get("code", "")), None)
        if found is None or found.expires < time.time() or found.client_id != form.get("client_id"):
            return error("bad_verification_code", "The code passed is incorrect or expired.")
        if form.get("redirect_uri") and form.get("redirect_uri") != found.redirect_uri:
            return error("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL.")
        value = "ghu_" + secrets.token_hex(18)
        ttl = 8 * 3600
        self.world.tokens[value] = Token(value, "user", found.login, time.time() + ttl)
        return answer({"access_token": value, "expires_in": str(ttl), "token_type": "bearer", "scope": ""})

    def _user(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        value = auth.split(" ", 1)[1].strip() if " " in auth else ""
        token = self.world.tokens.get(value)
        if token is None or token.expired() or token.kind != "user":
            return web.json_response(
                {"message": "Requires authentication", "documentation_url": f"{DOCS_USER}", "status": "401"},
                status=401,
            )
        body = self.views.user(token.subject) | {
            "name": token.subject,
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
        }
        return web.json_response(body)


DOCS_USER = "https://docs.github.com/rest/users/users#get-the-authenticated-user"
