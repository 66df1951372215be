"""The dashboard's routes: ``/fleet``, ``/fleet.json``, ``/fleet/policyreports.yaml`` and GitHub login.

Login is GitHub's OAuth web flow with the App's client (``GITHUB_CLIENT_ID`` and
``GITHUB_CLIENT_SECRET``): ``/fleet/login`` sends the browser to GitHub with a random
``state`` kept in a signed cookie, ``/fleet/oauth/callback`` checks it, trades the code for a
user token and opens a session (kept in the store, so every replica knows it; the cookie holds
only its signed id, HttpOnly and SameSite=Lax). Each user sees only the repositories that
``GET /repos/{owner}/{repo}`` with their own token answers (checked at most every
:data:`ACCESS_TTL` seconds). No session, no data. ``/fleet.json`` and the PolicyReports also
take ``Authorization: Bearer <GITOPS_BOT_FLEET_TOKEN>`` for automation (every repository).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yaml
from aiohttp import web

from bot.domain.fleet import build_fleet
from bot.domain.fleet.exports import policy_reports
from bot.domain.fleet.model import only_repos
from bot.domain.validate.eks import EksCatalog
from bot.fleet import sessions, state
from bot.fleet.metrics import FleetCollector
from bot.fleet.page import render_page
from bot.queue.base import DeliveryStore
from bot.service.metrics import Metrics
from bot.service.settings import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "gitops_bot_session"
STATE_COOKIE = "gitops_bot_oauth_state"
SESSION_SECONDS = 8 * 3600
ACCESS_TTL = 300.0
METRICS_INTERVAL = 30.0


class FleetWeb:
    """The dashboard's request handlers over one store."""

    def __init__(self, settings: Settings, store: web.AppKey[DeliveryStore], metrics: Metrics | None) -> None:
        self.settings = settings
        self.store_key = store
        self.collector = FleetCollector()
        if metrics is not None:
            metrics.registry.register(self.collector)
        self._access: dict[tuple[str, str], tuple[bool, float]] = {}
        self._http: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------ plumbing

    def _store(self, request: web.Request) -> DeliveryStore:
        return request.app[self.store_key]

    def _sign(self, value: str) -> str:
        mac = hmac.new(self.settings.session_key, value.encode(), hashlib.sha256).hexdigest()
        return f"{value}.{mac}"

    def _unsign(self, signed: str | None) -> str | None:
        if not signed or "." not in signed or not self.settings.session_key:
            return None
        value = signed.rsplit(".", 1)[0]
        return value if hmac.compare_digest(self._sign(value), signed) else None

    def _cookie(
        self, response: web.StreamResponse, name: str, value: str, request: web.Request, age: int
    ) -> None:
        response.set_cookie(
            name,
            self._sign(value),
            max_age=age,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=request.secure,
        )

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def fleet(self, request: web.Request) -> dict[str, Any]:
        facts = await state.load_facts(self._store(request))
        fleet = build_fleet(facts, EksCatalog.bundled(), date.today(), datetime.now(UTC))
        self.collector.update(fleet)  # the gauges follow what was last served (and the refresher)
        return fleet

    # ------------------------------------------------------------ who is asking

    async def _session(self, request: web.Request) -> dict[str, Any] | None:
        sid = self._unsign(request.cookies.get(SESSION_COOKIE))
        if sid is None:
            return None
        session = await sessions.load(self._store(request), self.settings.session_key, sid, time.time())
        if session is None:
            return None
        session["sid"] = sid
        return session

    def _bearer(self, request: web.Request) -> bool:
        expected = self.settings.fleet_token
        given = request.headers.get("Authorization", "")
        return (
            bool(expected)
            and given.startswith("Bearer ")
            and hmac.compare_digest(given.removeprefix("Bearer ").strip().encode(), str(expected).encode())
        )

    async def _can_read(self, session: dict[str, Any], repo: str) -> bool:
        key = (session["sid"], repo)
        known = self._access.get(key)
        if known is not None and time.monotonic() - known[1] < ACCESS_TTL:
            return known[0]
        headers = {
            "Authorization": f"Bearer {session['token']}",
            "Accept": "application/vnd.github+json",
            "User-Agent": "gitops-bot",
        }
        try:
            async with self.http.get(f"{self.settings.api_url}/repos/{repo}", headers=headers) as res:
                allowed = res.status == 200
        except (aiohttp.ClientError, TimeoutError):
            log.warning("fleet: could not check access to %s", repo)
            allowed = False  # fail closed
        self._access[key] = (allowed, time.monotonic())
        return allowed

    async def _visible(self, request: web.Request) -> tuple[dict[str, Any], str | None] | None:
        """Return (the fleet this caller may see, their login) or None when nobody is signed in."""
        if self._bearer(request):
            return await self.fleet(request), None
        session = await self._session(request)
        if session is None:
            return None
        fleet = await self.fleet(request)
        repos = sorted(
            set(fleet["filters"]["repo"])
            | {e["repo"] for e in fleet["environments"]}
            | set(fleet["governance"])
        )
        allowed = await asyncio.gather(*(self._can_read(session, r) for r in repos))
        return only_repos(fleet, [r for r, ok in zip(repos, allowed, strict=True) if ok]), str(
            session["login"]
        )

    # ------------------------------------------------------------ pages

    async def page(self, request: web.Request) -> web.StreamResponse:
        seen = await self._visible(request)
        if seen is None:
            raise web.HTTPFound("/fleet/login")
        fleet, login = seen
        body = _body(fleet)
        html = render_page(fleet, live_url="/fleet.json", etag=_etag(body), login=login)
        return web.Response(text=html, content_type="text/html", headers=_private())

    async def data(self, request: web.Request) -> web.StreamResponse:
        seen = await self._visible(request)
        if seen is None:
            return web.json_response(
                {"message": "Sign in at /fleet/login, or send a bearer token (GITOPS_BOT_FLEET_TOKEN)"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="gitops-bot fleet"'},
            )
        body = _body(seen[0])
        tag = _etag(body)
        if tag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers={"ETag": tag} | _private())
        return web.Response(body=body, content_type="application/json", headers={"ETag": tag} | _private())

    async def reports(self, request: web.Request) -> web.StreamResponse:
        seen = await self._visible(request)
        if seen is None:
            return web.Response(status=401, text="sign in at /fleet/login or send a bearer token\n")
        docs = policy_reports(seen[0], int(time.time()))
        text = yaml.safe_dump_all(docs, sort_keys=False) if docs else ""
        return web.Response(text=text, content_type="application/yaml", headers=_private())

    # ------------------------------------------------------------ login

    def _redirect_uri(self, request: web.Request) -> str:
        return str(request.url.with_path("/fleet/oauth/callback").with_query(None))

    async def login(self, request: web.Request) -> web.StreamResponse:
        if not (
            self.settings.oauth_client_id and self.settings.oauth_client_secret and self.settings.session_key
        ):
            return web.Response(
                status=503,
                text="GitHub login is not configured: set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET "
                "(the App's OAuth client) and GITOPS_BOT_SESSION_KEY.\n",
            )
        nonce = secrets.token_urlsafe(24)
        query = urlencode(
            {
                "client_id": self.settings.oauth_client_id,
                "redirect_uri": self._redirect_uri(request),
                "state": nonce,
            }
        )
        response = web.HTTPFound(f"{self.settings.web_url}/login/oauth/authorize?{query}")
        self._cookie(response, STATE_COOKIE, nonce, request, 600)
        raise response  # aiohttp: an HTTPException is raised, not returned

    async def callback(self, request: web.Request) -> web.StreamResponse:
        expected = self._unsign(request.cookies.get(STATE_COOKIE))
        given = request.query.get("state", "")
        if not expected or not hmac.compare_digest(expected, given):
            return web.Response(
                status=400, text="The sign-in state does not match: start again at /fleet/login.\n"
            )
        code = request.query.get("code")
        if not code:
            reason = request.query.get("error_description") or request.query.get("error") or "no code"
            return web.Response(status=400, text=f"GitHub did not sign you in ({reason}).\n")
        form = {
            "client_id": self.settings.oauth_client_id or "",
            "client_secret": self.settings.oauth_client_secret or "",
            "code": code,
            "redirect_uri": self._redirect_uri(request),
        }
        try:
            async with self.http.post(
                f"{self.settings.web_url}/login/oauth/access_token",
                data=form,
                headers={"Accept": "application/json"},
            ) as res:
                answer = await res.json(content_type=None)
            token = answer.get("access_token") if isinstance(answer, dict) else None
            if not token:
                why = answer.get("error_description") if isinstance(answer, dict) else None
                return web.Response(
                    status=400, text=f"GitHub refused the sign-in code ({why or 'no token'}).\n"
                )
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
            async with self.http.get(f"{self.settings.api_url}/user", headers=headers) as res:
                user = await res.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return web.Response(status=502, text="GitHub could not be reached to sign you in; try again.\n")
        login = user.get("login") if isinstance(user, dict) else None
        if not login:
            return web.Response(status=502, text="GitHub did not say who you are; try again.\n")
        sid = secrets.token_urlsafe(32)
        await sessions.create(
            self._store(request), self.settings.session_key, sid, login, token, time.time(), SESSION_SECONDS
        )
        response = web.HTTPFound("/fleet")
        self._cookie(response, SESSION_COOKIE, sid, request, SESSION_SECONDS)
        response.del_cookie(STATE_COOKIE, path="/")
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        """``POST /fleet/logout`` ends the session (removed from the store); ``GET`` asks first.

        A POST, so that another site cannot sign people out with a link or an image (a
        SameSite=Lax cookie is not sent with a cross-site POST).
        """
        if request.method != "POST":
            return web.Response(text=_LOGOUT_FORM, content_type="text/html", headers=_private())
        sid = self._unsign(request.cookies.get(SESSION_COOKIE))
        if sid is not None:
            await sessions.delete(self._store(request), sid)
            self._access = {k: v for k, v in self._access.items() if k[0] != sid}
        response = web.Response(text=_SIGNED_OUT, content_type="text/html", headers=_private())
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    # ------------------------------------------------------------ metrics

    async def refresh_metrics(self, app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                try:
                    await sessions.prune(app[self.store_key], time.time())
                    facts = await state.load_facts(app[self.store_key])
                    self.collector.update(
                        build_fleet(facts, EksCatalog.bundled(), date.today(), datetime.now(UTC))
                    )
                except Exception:
                    log.exception("fleet: could not refresh the fleet gauges")
                await asyncio.sleep(METRICS_INTERVAL)

        task = asyncio.create_task(loop(), name="gitops-bot-fleet-metrics")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await self.close()


_HEAD = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{} · gitops-bot</title></head>'
_LOGOUT_FORM = _HEAD.format("Sign out") + (
    '<body><form method="post" action="/fleet/logout">'
    '<button type="submit">Sign out of the fleet dashboard</button></form></body></html>\n'
)
_SIGNED_OUT = _HEAD.format("Signed out") + (
    '<body><p>Signed out. <a href="/fleet/login">Sign in again</a></p></body></html>\n'
)


def _body(fleet: dict[str, Any]) -> bytes:
    return json.dumps(fleet, sort_keys=True, separators=(",", ":")).encode()


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _private() -> dict[str, str]:
    return {"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff", "Vary": "Cookie"}


def add_fleet_routes(
    app: web.Application, settings: Settings, store: web.AppKey[DeliveryStore], metrics: Metrics | None
) -> FleetWeb:
    """Add the dashboard's routes (and its gauge refresher) to ``app``."""
    fleet = FleetWeb(settings, store, metrics)
    app.router.add_get("/fleet", fleet.page)
    app.router.add_get("/fleet.json", fleet.data)
    app.router.add_get("/fleet/policyreports.yaml", fleet.reports)
    app.router.add_get("/fleet/login", fleet.login)
    app.router.add_get("/fleet/oauth/callback", fleet.callback)
    app.router.add_get("/fleet/logout", fleet.logout)
    app.router.add_post("/fleet/logout", fleet.logout)
    app.cleanup_ctx.append(fleet.refresh_metrics)
    return fleet
