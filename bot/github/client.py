"""A gidgethub client that survives GitHub's faults: retries, rate limits, ETags, bounded concurrency.

:class:`GitHubClient` is :class:`gidgethub.aiohttp.GitHubAPI` with ``_request`` overridden. On top of
gidgethub it adds:

* **Retries** with exponential backoff and full jitter, within a bounded total time
  (:class:`RetryPolicy`). Which failures are retried depends on the method:

  - idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE) are retried on any connection error,
    timeout, and on 500/502/503/504;
  - POST and PATCH are retried only when GitHub cannot have acted on them: a connection that
    could not be established (nothing was sent), and 502/503/504 (the edge answered, the API did
    not). A 500 or a connection dropped after the request was sent may hide a write that
    happened (a second comment, a second pull request), so it is left to the caller; the
    delivery worker retries the whole handler, whose writes are idempotent (marker-tagged
    comments, deterministic branch names), which is the safe place to repeat a write.

* **Rate limits**: a 429, or a 403 that says it is a rate limit (``x-ratelimit-remaining: 0``,
  ``Retry-After``, or "secondary rate limit" in the body), is retried for every method (GitHub
  rejected the request, nothing happened) after ``Retry-After`` seconds, else until
  ``x-ratelimit-reset``, else one minute as GitHub's docs ask. When the wait would exceed the
  retry budget the response is returned and gidgethub raises its usual exception.

* **Bounded concurrency and a shared pause per installation**: all clients of one installation
  share an :class:`InstallationLimits` (handed in by :class:`bot.github.auth.GitHubApp`): a
  semaphore, and a pause set by any rate-limit answer or by ``x-ratelimit-remaining: 0``, during
  which no client of that installation sends anything (GitHub asks integrations to stop all
  requests, not just the one that was refused). A pause longer than the budget raises
  :class:`GitHubPaused` before sending, so the worker retries the delivery later.

* **Spending the last of the quota on what cannot wait**: every answer's
  ``x-ratelimit-remaining``/``-limit``/``-reset`` is kept per installation. When fewer than
  :data:`RESERVE_FRACTION` of the hourly quota (at least :data:`RESERVE_MIN` requests) remain
  before the reset, writes that can wait (comments, their edits and reactions) are not sent:
  they raise :class:`GitHubDeferred` (a :class:`GitHubPaused`), so the delivery is retried
  later, while check runs and reads go on. ``/metrics`` shows it:
  ``gitops_bot_github_rate_limit_low`` is 1 while deferring, and
  ``gitops_bot_github_deferred_writes_total{kind}`` counts what was postponed.

* **Conditional requests**: gidgethub sends ``If-None-Match`` for GETs it has a cached ETag for and
  answers a 304 from the cache; a 304 does not count against GitHub's rate limit. The cache is a
  bounded :class:`LRUCache` shared by the clients of one installation.

* **Token refresh**: a 401 on an installation client (token revoked or expired early) makes the
  client fetch a new token through ``refresh_token`` and send the request again, once.

* **Metrics**: ``github_calls{method,status}`` per HTTP exchange (``status="error"`` for a failed
  connection) and ``rate_limit_remaining``.

Nothing here logs a header, so the ``Authorization`` token never reaches the logs; use
:func:`redact_headers` when headers must be shown.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import gidgethub
import gidgethub.aiohttp

if TYPE_CHECKING:  # the service's metrics; the client only calls what it is given
    from bot.service.metrics import Metrics


log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES_IDEMPOTENT = frozenset({500, 502, 503, 504})
RETRY_STATUSES_WRITE = frozenset({502, 503, 504})
SECONDARY_RATE_LIMIT_WAIT = 60.0
SENSITIVE_HEADERS = frozenset(
    {"authorization", "cookie", "set-cookie", "x-hub-signature-256", "x-hub-signature"}
)

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long :class:`GitHubClient` retries one request.

    ``total_seconds`` bounds the time spent sleeping between attempts; a wait that would cross it
    is not taken and the last answer (or error) goes back to the caller.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    total_seconds: float = 120.0
    request_timeout: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Return the delay before attempt ``attempt + 1`` (full jitter, capped)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)


class LRUCache(MutableMapping[K, V]):
    """A dict that forgets its least recently used entries beyond ``maxsize`` (the ETag cache)."""

    def __init__(self, maxsize: int = 1024) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()

    def __getitem__(self, key: K) -> V:
        value = self._data[key]
        self._data.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def __delitem__(self, key: K) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of ``headers`` safe to log: credentials replaced by ``[redacted]``."""
    return {k: ("[redacted]" if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}


def _path(url: str) -> str:
    """Return the path of ``url`` for log lines (no query string, no host credentials)."""
    return urlsplit(url).path


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.title())
    return value


def _retry_after_seconds(value: str, now: float) -> float | None:
    """Parse ``Retry-After``: delta seconds or an HTTP date; None when unreadable."""
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def rate_limit_wait(status: int, headers: Mapping[str, str], body: bytes, *, now: float) -> float | None:
    """Return how long to wait before retrying a rate-limited answer, or None if it is not one.

    A 403 is a rate limit only when it says so (``x-ratelimit-remaining: 0``, ``Retry-After`` or
    "rate limit" in the message); other 403s are permission errors and are not retried.
    """
    if status not in (403, 429):
        return None
    retry_after = _header(headers, "retry-after")
    remaining = _header(headers, "x-ratelimit-remaining")
    reset = _header(headers, "x-ratelimit-reset")
    says_rate_limit = b"rate limit" in body[:2000].lower()
    if status == 403 and retry_after is None and remaining != "0" and not says_rate_limit:
        return None
    if retry_after is not None:
        seconds = _retry_after_seconds(retry_after, now)
        if seconds is not None:
            return seconds
    if remaining == "0" and reset is not None:
        try:
            return max(0.0, float(reset) - now) + 1.0
        except ValueError:
            pass
    return SECONDARY_RATE_LIMIT_WAIT


def _retryable_error(method: str, exc: BaseException) -> bool:
    """Return True when a transport error may be retried for ``method`` (see module docs)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return False
    if method in IDEMPOTENT_METHODS:
        return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError)
    # Writes: only when the connection was never made, so nothing reached GitHub.
    return isinstance(exc, aiohttp.ClientConnectorError)


def _readable_error(status: int, headers: Mapping[str, str], body: bytes) -> Mapping[str, str]:
    """Relabel an error body that claims JSON but is not (a proxy's page) as text.

    gidgethub would otherwise raise a JSON decoding error instead of the HTTP error it is.
    """
    if status < 400 or "json" not in (_header(headers, "content-type") or ""):
        return headers
    try:
        json.loads(body or b"null")
    except ValueError:
        relabelled = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        relabelled["content-type"] = "text/plain; charset=utf-8"
        return relabelled
    return headers


Sleep = Callable[[float], Awaitable[None]]


class GitHubPaused(gidgethub.GitHubException):
    """GitHub asked this installation to pause for longer than the retry budget; try again later."""


class GitHubDeferred(GitHubPaused):
    """A write that can wait was not sent: the installation's quota is nearly spent."""


RESERVE_FRACTION = 0.05
RESERVE_MIN = 50
_DEFERRABLE = re.compile(r"/repos/[^/]+/[^/]+/issues/(?:\d+/comments|comments/\d+(?:/reactions)?)$")


def deferrable_kind(method: str, url: str) -> str | None:
    """``"comment"`` for a write that can wait (comments, their edits and reactions), else None."""
    if method not in {"POST", "PATCH", "PUT", "DELETE"}:
        return None
    return "comment" if _DEFERRABLE.search(_path(url).split("?", 1)[0]) else None


@dataclass
class InstallationLimits:
    """What every client of one installation shares: a concurrency bound and a pause.

    GitHub's rate limits are per installation, and its docs ask an integration that hit one to
    stop *all* its requests until ``Retry-After`` / ``x-ratelimit-reset``, not only the one that
    failed. ``paused_until`` is on the ``time.monotonic()`` scale.
    """

    max_concurrency: int = 8
    paused_until: float = 0.0
    remaining: int | None = None  # the last x-ratelimit-remaining seen
    quota: int | None = None  # x-ratelimit-limit
    reset_at: float = 0.0  # x-ratelimit-reset, epoch seconds

    def __post_init__(self) -> None:
        self.semaphore = asyncio.Semaphore(self.max_concurrency)

    def pause(self, seconds: float, now: float) -> None:
        """Hold every request of the installation for ``seconds`` from ``now`` (never shortens a pause)."""
        self.paused_until = max(self.paused_until, now + seconds)

    def note(self, headers: Mapping[str, str]) -> None:
        """Keep the quota figures of an answer (missing or unreadable ones change nothing)."""
        try:
            remaining = _header(headers, "x-ratelimit-remaining")
            if remaining is not None:
                self.remaining = int(remaining)
            quota = _header(headers, "x-ratelimit-limit")
            if quota is not None:
                self.quota = int(quota)
            reset = _header(headers, "x-ratelimit-reset")
            if reset is not None:
                self.reset_at = float(reset)
        except ValueError:
            return

    def low(self, wall_clock: float) -> bool:
        """True while the quota is nearly spent and not yet reset: defer what can wait."""
        if self.remaining is None or wall_clock >= self.reset_at:
            return False
        reserve = max(RESERVE_MIN, int((self.quota or 0) * RESERVE_FRACTION))
        return self.remaining < reserve


class GitHubClient(gidgethub.aiohttp.GitHubAPI):
    """A GitHub REST client with retries, rate-limit waits, ETag cache and per-installation limits.

    ``base_url`` points at GitHub, GitHub Enterprise Server (``https://HOST/api/v3``) or the
    simulator. ``limits`` is shared by every client of one installation; ``sleep``,
    ``wall_clock`` and ``monotonic`` exist for tests.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        requester: str = "gitops-bot",
        *,
        oauth_token: str | None = None,
        app_id: str | None = None,
        private_key: str | bytes | None = None,
        base_url: str = "https://api.github.com",
        cache: MutableMapping[str, Any] | None = None,
        limits: InstallationLimits | None = None,
        metrics: Metrics | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        refresh_token: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        super().__init__(
            session,
            requester,
            oauth_token=oauth_token,
            app_id=app_id,
            private_key=private_key,
            cache=cache,
            base_url=base_url.rstrip("/"),
        )
        self.limits = limits if limits is not None else InstallationLimits()
        self._metrics = metrics
        self.retry_policy = retry if retry is not None else RetryPolicy()
        self._sleep = sleep if sleep is not None else asyncio.sleep
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._refresh_token = refresh_token
        self.attempts = 0

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        timeout = aiohttp.ClientTimeout(total=self.retry_policy.request_timeout)
        async with (
            self.limits.semaphore,
            self._session.request(method, url, headers=headers, data=body, timeout=timeout) as response,
        ):
            return response.status, response.headers, await response.read()

    def _observe(self, method: str, status: str, headers: Mapping[str, str] | None) -> None:
        if self._metrics is None:
            return
        self._metrics.github_calls.labels(method=method, status=status).inc()
        if headers is not None:
            remaining = _header(headers, "x-ratelimit-remaining")
            if remaining is not None and remaining.isdigit():
                self._metrics.rate_limit_remaining.set(int(remaining))

    def _defer_if_low(self, method: str, url: str) -> None:
        """Raise :class:`GitHubDeferred` for a write that can wait while the quota is nearly spent."""
        low = self.limits.low(self._wall_clock())
        if self._metrics is not None:
            self._metrics.rate_limit_low.set(1 if low else 0)
        kind = deferrable_kind(method, url) if low else None
        if kind is None:
            return
        if self._metrics is not None:
            self._metrics.deferred_writes.labels(kind=kind).inc()
        log.warning(
            "GitHub quota low (%s left until the reset): %s %s postponed",
            self.limits.remaining,
            method,
            _path(url),
        )
        raise GitHubDeferred(
            f"{kind} postponed: {self.limits.remaining} GitHub requests left until the reset, "
            "kept for check runs"
        )

    def _note_quota(self, headers: Mapping[str, str]) -> None:
        """Pause the installation until the reset when GitHub says the hourly quota is spent."""
        if _header(headers, "x-ratelimit-remaining") != "0":
            return
        reset = _header(headers, "x-ratelimit-reset")
        try:
            wait = float(reset) - self._wall_clock() + 1.0 if reset is not None else None
        except ValueError:
            wait = None
        if wait is not None and wait > 0:
            self.limits.pause(wait, self._monotonic())

    def _status_delay(
        self, method: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> float | None:
        wait = rate_limit_wait(status, headers, body, now=self._wall_clock())
        if wait is not None:
            return wait
        allowed = RETRY_STATUSES_IDEMPOTENT if method in IDEMPOTENT_METHODS else RETRY_STATUSES_WRITE
        if status in allowed:
            retry_after = _header(headers, "retry-after")
            if retry_after is not None:
                parsed = _retry_after_seconds(retry_after, self._wall_clock())
                if parsed is not None:
                    return parsed
            return -1.0  # use the backoff
        return None

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        policy = self.retry_policy
        slept = 0.0
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            self._defer_if_low(method, url)
            paused = self.limits.paused_until - self._monotonic()
            if paused > 0:
                if slept + paused > policy.total_seconds:
                    raise GitHubPaused(
                        f"GitHub asked this installation to pause {paused:.0f}s (rate limit); "
                        "the request was not sent and can be retried later"
                    )
                log.info("GitHub installation paused; %s %s waits %.1fs", method, _path(url), paused)
                await self.sleep(paused)
                slept += paused
            try:
                status, resp_headers, data = await self._send(method, url, headers, body)
            except (TimeoutError, aiohttp.ClientError) as exc:
                self._observe(method, "error", None)
                delay = policy.backoff(attempt)
                if (
                    not _retryable_error(method, exc)
                    or attempt >= policy.max_attempts
                    or slept + delay > policy.total_seconds
                ):
                    raise
                log.warning(
                    "GitHub %s %s failed (%s); retry %d in %.1fs",
                    method,
                    _path(url),
                    type(exc).__name__,
                    attempt,
                    delay,
                )
                await self.sleep(delay)
                slept += delay
                continue
            self._observe(method, str(status), resp_headers)
            self.limits.note(resp_headers)
            if status == 401 and self._refresh_token is not None and self.oauth_token is not None:
                # The installation token was revoked or expired early: GitHub did nothing with
                # the request, so any method may be sent again, once, with a fresh token.
                refresh, self._refresh_token = self._refresh_token, None
                self.oauth_token = await refresh()
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                headers["authorization"] = f"token {self.oauth_token}"
                log.warning("GitHub %s %s answered 401; retrying once with a new token", method, _path(url))
                continue
            resp_headers = _readable_error(status, resp_headers, data)
            self._note_quota(resp_headers)
            limited = rate_limit_wait(status, resp_headers, data, now=self._wall_clock())
            if limited is not None:
                self.limits.pause(limited, self._monotonic())
            delay_or_none = self._status_delay(method, status, resp_headers, data)
            if delay_or_none is None:
                return status, resp_headers, data
            delay = policy.backoff(attempt) if delay_or_none < 0 else delay_or_none
            if limited is not None:
                # The shared pause makes the next attempt wait; do not wait twice.
                if attempt >= policy.max_attempts or slept + delay > policy.total_seconds:
                    return status, resp_headers, data
                continue
            if attempt >= policy.max_attempts or slept + delay > policy.total_seconds:
                log.warning(
                    "GitHub %s %s answered %d; giving up after %d attempts",
                    method,
                    _path(url),
                    status,
                    attempt,
                )
                return status, resp_headers, data
            log.warning(
                "GitHub %s %s answered %d; retry %d in %.1fs", method, _path(url), status, attempt, delay
            )
            await self.sleep(delay)
            slept += delay
