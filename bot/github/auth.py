"""GitHub App authentication: the App JWT and cached installation access tokens.

:class:`GitHubApp` implements :class:`bot.github.types.GitHubClients`. The App JWT is made by
:func:`gidgethub.apps.get_jwt` (PyJWT, RS256, ``iat`` backdated 60 s for clock drift, ``exp``
9 minutes later, under GitHub's 10-minute limit) and refreshed by gidgethub before it expires.
Installation tokens come from :func:`gidgethub.apps.get_installation_access_token` and are cached
per installation until ``refresh_margin`` seconds (5 minutes by default, at most half the token's
life) before their ``expires_at``. Many coroutines asking for the same installation at once cause
one token request (a lock per installation). Nothing assumes a token's length or format.

See https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import gidgethub.apps
import jwt

from bot.github.client import GitHubClient, InstallationLimits, LRUCache, RetryPolicy, Sleep

if TYPE_CHECKING:  # the service's metrics; the client only calls what it is given
    from bot.service.metrics import Metrics

log = logging.getLogger(__name__)

DEFAULT_TOKEN_LIFETIME = 3600.0


class AppAuthError(Exception):
    """The App's credentials are unusable (a message that names the setting, never its value)."""


@dataclass
class _CachedToken:
    token: str
    refresh_at: float  # time.monotonic() after which a new token is requested
    expires_at: datetime | None

    def __repr__(self) -> str:  # never show the token itself
        return f"_CachedToken(refresh_at={self.refresh_at!r}, expires_at={self.expires_at!r})"


def parse_expires_at(value: Any) -> datetime | None:
    """Parse GitHub's ``expires_at`` (``2016-07-11T22:14:10Z``); None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def check_private_key(private_key: str) -> None:
    """Raise :class:`AppAuthError` when ``private_key`` cannot sign an App JWT (RS256 PEM)."""
    try:
        gidgethub.apps.get_jwt(app_id="0", private_key=private_key)
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise AppAuthError(
            f"GITHUB_PRIVATE_KEY is not a usable RSA private key in PEM format ({type(exc).__name__})"
        ) from None


class GitHubApp:
    """Hands out GitHub clients authenticated as the App (JWT) or as one of its installations."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        app_id: str,
        private_key: str,
        api_url: str = "https://api.github.com",
        metrics: Metrics | None = None,
        max_concurrency: int = 8,
        requester: str = "gitops-bot",
        refresh_margin: float = 300.0,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        etag_cache_size: int = 1024,
    ) -> None:
        if not str(app_id).strip():
            raise AppAuthError("GITHUB_APP_ID is empty")
        check_private_key(private_key)
        self._session = session
        self.app_id = str(app_id)
        self._private_key = private_key
        self.api_url = api_url.rstrip("/")
        self._metrics = metrics
        self._max_concurrency = max_concurrency
        self._requester = requester
        self._refresh_margin = refresh_margin
        self._retry = retry
        self._sleep = sleep
        self._monotonic = monotonic
        self._etag_cache_size = etag_cache_size
        self._tokens: dict[int, _CachedToken] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._limits: dict[int | None, InstallationLimits] = {}
        self._caches: dict[int | None, LRUCache[str, Any]] = {}
        self.token_requests = 0

    def __repr__(self) -> str:
        return f"GitHubApp(app_id={self.app_id!r}, api_url={self.api_url!r})"

    def _client(self, key: int | None, **auth: Any) -> GitHubClient:
        if key not in self._limits:
            self._limits[key] = InstallationLimits(self._max_concurrency)
            self._caches[key] = LRUCache(self._etag_cache_size)
        return GitHubClient(
            self._session,
            self._requester,
            base_url=self.api_url,
            cache=self._caches[key],
            limits=self._limits[key],
            metrics=self._metrics,
            retry=self._retry,
            sleep=self._sleep,
            monotonic=self._monotonic,
            **auth,
        )

    async def app_api(self) -> GitHubClient:
        """Return a client authenticated as the App itself (JWT), for ``/app/...`` routes."""
        return self._client(None, app_id=self.app_id, private_key=self._private_key)

    async def installation_token(self, installation_id: int) -> str:
        """Return the installation's access token, requesting a new one only when due. Never log it."""
        cached = self._tokens.get(installation_id)
        if cached is not None and time.monotonic() < cached.refresh_at:
            return cached.token
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation_id)
            if cached is not None and time.monotonic() < cached.refresh_at:
                return cached.token
            cached = await self._fetch_token(installation_id)
            self._tokens[installation_id] = cached
            return cached.token

    async def _fetch_token(self, installation_id: int) -> _CachedToken:
        app = await self.app_api()
        self.token_requests += 1
        answer = await gidgethub.apps.get_installation_access_token(
            app,
            installation_id=str(installation_id),
            app_id=self.app_id,
            private_key=self._private_key,
        )
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise AppAuthError(f"GitHub returned no token for installation {installation_id}")
        expires_at = parse_expires_at(answer.get("expires_at"))
        lifetime = DEFAULT_TOKEN_LIFETIME
        if expires_at is not None:
            lifetime = (expires_at - datetime.now(UTC)).total_seconds()
        margin = min(self._refresh_margin, max(lifetime, 0.0) / 2)
        refresh_at = time.monotonic() + lifetime - margin
        log.info("new access token for installation %d (expires %s)", installation_id, expires_at)
        return _CachedToken(token=token, refresh_at=refresh_at, expires_at=expires_at)

    def forget_token(self, installation_id: int) -> None:
        """Drop a cached token (after GitHub answered 401 with it, for example)."""
        self._tokens.pop(installation_id, None)

    async def installation_api(self, installation_id: int) -> GitHubClient:
        """Return a client authenticated as the installation, sharing its limits and ETag cache."""
        token = await self.installation_token(installation_id)

        async def refresh() -> str:
            if self._tokens.get(installation_id) is not None and self._tokens[installation_id].token == token:
                self.forget_token(installation_id)
            return await self.installation_token(installation_id)

        return self._client(installation_id, oauth_token=token, refresh_token=refresh)
