"""GitHubClient against a scripted GitHub: retries, rate limits, ETags, concurrency, metrics, redaction."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import aiohttp
import gidgethub
import pytest

from bot.github.client import (
    GitHubClient,
    GitHubDeferred,
    GitHubPaused,
    InstallationLimits,
    LRUCache,
    RetryPolicy,
    deferrable_kind,
    rate_limit_wait,
    redact_headers,
)
from bot.service.metrics import Metrics
from tests.github.conftest import Sleeper
from tests.github.fakegh import FakeGitHub

TOKEN = "ghs_SUPERSECRETTOKEN0123456789"


def client(
    session: aiohttp.ClientSession,
    base_url: str,
    sleeper: Sleeper,
    *,
    metrics: Metrics | None = None,
    retry: RetryPolicy | None = None,
    **kw: object,
) -> GitHubClient:
    return GitHubClient(
        session,
        "tests",
        oauth_token=TOKEN,
        base_url=base_url,
        metrics=metrics,
        retry=retry or RetryPolicy(max_attempts=4, base_delay=0.2, total_seconds=30),
        sleep=sleeper,
        monotonic=sleeper.clock,
        **kw,  # type: ignore[arg-type]
    )


def spent_quota(reset: float) -> dict[str, str]:
    """Headers of an answer after which the hourly quota is spent until ``reset`` (epoch seconds)."""
    return {"x-ratelimit-remaining": "0", "x-ratelimit-limit": "5000", "x-ratelimit-reset": str(int(reset))}


def calls(metrics: Metrics, method: str, status: str) -> float:
    value = metrics.registry.get_sample_value(
        "gitops_bot_github_api_calls_total", {"method": method, "status": status}
    )
    return value or 0.0


async def test_get_retried_on_5xx_then_succeeds(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    fake.script[("GET", "/repos/o/r")] = [
        (500, {}, {"message": "boom"}),
        (502, {}, "bad gateway"),
        (200, {}, {"ok": 1}),
    ]
    metrics = Metrics()
    gh = client(session, base_url, sleeper, metrics=metrics)
    assert await gh.getitem("/repos/o/r") == {"ok": 1}
    assert len(fake.paths("GET")) == 3
    assert len(sleeper.calls) == 2
    assert 0.1 <= sleeper.calls[0] <= 0.2 and 0.2 <= sleeper.calls[1] <= 0.4, (
        "exponential backoff with jitter"
    )
    assert calls(metrics, "GET", "500") == 1 and calls(metrics, "GET", "502") == 1
    assert calls(metrics, "GET", "200") == 1


async def test_post_not_retried_on_500_but_on_502(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    fake.script[("POST", "/repos/o/r/issues/1/comments")] = [(500, {}, {"message": "maybe written"})]
    gh = client(session, base_url, sleeper)
    with pytest.raises(gidgethub.GitHubBroken):
        await gh.post("/repos/o/r/issues/1/comments", data={"body": "x"})
    assert len(fake.paths("POST")) == 1, "a POST that may have been applied is not repeated"

    fake.script[("POST", "/repos/o/r/issues/2/comments")] = [(502, {}, "gateway"), (201, {}, {"id": 1})]
    assert await gh.post("/repos/o/r/issues/2/comments", data={"body": "x"}) == {"id": 1}
    assert fake.paths("POST").count("/repos/o/r/issues/2/comments") == 2


async def test_dropped_connection_retries_get_not_post(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    fake.script[("GET", "/x")] = [(0, {}, "DROP"), (200, {}, {"ok": True})]
    fake.script[("POST", "/y")] = [(0, {}, "DROP"), (201, {}, {"ok": True})]
    gh = client(session, base_url, sleeper)
    assert await gh.getitem("/x") == {"ok": True}
    with pytest.raises(aiohttp.ClientError):
        await gh.post("/y", data={})
    assert fake.paths("POST") == ["/y"]


async def test_connection_refused_retried_for_writes_then_gives_up(
    session: aiohttp.ClientSession, sleeper: Sleeper
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = Metrics()
    gh = client(session, f"http://127.0.0.1:{port}", sleeper, metrics=metrics)
    with pytest.raises(aiohttp.ClientConnectorError):
        await gh.post("/repos/o/r/pulls", data={})
    assert gh.attempts == 4, "nothing was sent, so a write may be retried"
    assert calls(metrics, "POST", "error") == 4


async def test_retry_after_honoured_on_429_and_secondary_403(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    fake.script[("POST", "/repos/o/r/check-runs")] = [
        (429, {"Retry-After": "7"}, {"message": "slow down"}),
        (403, {"Retry-After": "3"}, {"message": "You have exceeded a secondary rate limit"}),
        (201, {}, {"id": 9}),
    ]
    gh = client(session, base_url, sleeper)
    assert await gh.post("/repos/o/r/check-runs", data={}) == {"id": 9}
    assert sleeper.calls == [7.0, 3.0]


async def test_primary_rate_limit_waits_until_reset(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    now = 1_700_000_000.0
    headers = spent_quota(reset=now + 12)
    fake.script[("GET", "/rate")] = [(403, headers, {"message": "API rate limit exceeded"}), (200, {}, {})]
    gh = client(session, base_url, sleeper, wall_clock=lambda: now)
    await gh.getitem("/rate")
    assert sleeper.calls == [13.0]


async def test_rate_limit_beyond_budget_raises_instead_of_waiting(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    headers = spent_quota(reset=time.time() + 3600)
    fake.script[("GET", "/rate")] = [(403, headers, {"message": "API rate limit exceeded"})]
    gh = client(session, base_url, sleeper)
    with pytest.raises(gidgethub.RateLimitExceeded):
        await gh.getitem("/rate")
    assert sleeper.calls == []


async def test_permission_403_is_not_retried(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    fake.script[("GET", "/secret")] = [
        (403, {"x-ratelimit-remaining": "4000"}, {"message": "Resource not accessible by integration"})
    ]
    gh = client(session, base_url, sleeper)
    with pytest.raises(gidgethub.BadRequest):
        await gh.getitem("/secret")
    assert len(fake.seen) == 1 and sleeper.calls == []


async def test_total_retry_time_is_bounded(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    fake.script[("GET", "/down")] = [(503, {}, "unavailable")]
    policy = RetryPolicy(max_attempts=100, base_delay=1.0, max_delay=4.0, total_seconds=10.0)
    gh = client(session, base_url, sleeper, retry=policy)
    with pytest.raises(gidgethub.GitHubBroken):
        await gh.getitem("/down")
    assert sum(sleeper.calls) <= 10.0
    assert 3 <= len(fake.seen) < 100


async def test_etag_304_answers_from_cache(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    etag = '"abc123"'

    def answer(request):  # type: ignore[no-untyped-def]
        if request.headers.get("If-None-Match") == etag:
            return 304, {"ETag": etag, "x-ratelimit-remaining": "4999"}, ""
        return 200, {"ETag": etag, "x-ratelimit-remaining": "4999"}, {"sha": "deadbeef"}

    fake.script[("GET", "/repos/o/r/pulls/1")] = [answer]
    metrics = Metrics()
    cache: LRUCache[str, object] = LRUCache(8)
    gh = client(session, base_url, sleeper, metrics=metrics, cache=cache)
    assert await gh.getitem("/repos/o/r/pulls/1") == {"sha": "deadbeef"}
    # A second client of the same installation shares the cache.
    gh2 = client(session, base_url, sleeper, metrics=metrics, cache=cache)
    assert await gh2.getitem("/repos/o/r/pulls/1") == {"sha": "deadbeef"}
    assert fake.seen[1].headers.get("If-None-Match") == etag
    assert calls(metrics, "GET", "200") == 1 and calls(metrics, "GET", "304") == 1
    assert metrics.registry.get_sample_value("gitops_bot_github_rate_limit_remaining") == 4999


def test_lru_cache_is_bounded() -> None:
    cache: LRUCache[str, int] = LRUCache(2)
    cache["a"], cache["b"] = 1, 2
    assert cache["a"] == 1
    cache["c"] = 3
    assert "b" not in cache and set(cache) == {"a", "c"} and len(cache) == 2
    del cache["a"]
    assert list(cache) == ["c"]


async def test_concurrency_bounded_per_installation(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    fake.delay = 0.02
    fake.script[("GET", "/slow")] = [(200, {}, {})]
    shared = InstallationLimits(max_concurrency=2)
    clients = [client(session, base_url, sleeper, limits=shared) for _ in range(3)]
    await asyncio.gather(*(c.getitem("/slow") for c in clients for _ in range(4)))
    assert fake.max_in_flight == 2
    assert len(fake.seen) == 12


async def test_token_never_logged_during_retries(
    session: aiohttp.ClientSession,
    base_url: str,
    fake: FakeGitHub,
    sleeper: Sleeper,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.script[("GET", "/flaky")] = [(503, {}, "x"), (0, {}, "DROP"), (200, {}, {})]
    gh = client(session, base_url, sleeper)
    await gh.getitem("/flaky")
    assert "retry" in caplog.text
    assert TOKEN not in caplog.text


def test_redact_headers() -> None:
    out = redact_headers(
        {"Authorization": f"token {TOKEN}", "Accept": "x", "x-hub-signature-256": "sha256=1"}
    )
    assert out == {"Authorization": "[redacted]", "Accept": "x", "x-hub-signature-256": "[redacted]"}


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (429, {}, b"", 60.0),
        (429, {"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, b"", 10.0),
        (403, {}, b'{"message": "Not allowed"}', None),
        (403, {}, b'{"message": "You have exceeded a secondary rate limit"}', 60.0),
        (404, {"retry-after": "5"}, b"", None),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "junk"}, b"", 60.0),
    ],
)
def test_rate_limit_wait_table(
    status: int, headers: dict[str, str], body: bytes, expected: float | None
) -> None:
    now = 1445412480.0  # 07:28:00 GMT on that day
    assert rate_limit_wait(status, headers, body, now=now) == expected


async def test_error_page_claiming_json_still_gives_the_http_error(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    fake.script[("GET", "/proxy")] = [(404, {"content-type": "application/json"}, "<html>not json</html>")]
    gh = client(session, base_url, sleeper)
    with pytest.raises(gidgethub.BadRequest) as info:
        await gh.getitem("/proxy")
    assert info.value.status_code == 404


async def test_rate_limit_pauses_every_client_of_the_installation(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    fake.script[("GET", "/a")] = [(429, {"Retry-After": "30"}, {"message": "slow down"})]
    fake.script[("GET", "/b")] = [(200, {}, {"b": 1})]
    shared = InstallationLimits()
    one_shot = RetryPolicy(max_attempts=1)
    a = client(session, base_url, sleeper, limits=shared, retry=one_shot)
    with pytest.raises(gidgethub.BadRequest):
        await a.getitem("/a")
    b = client(session, base_url, sleeper, limits=shared)
    assert await b.getitem("/b") == {"b": 1}
    assert sleeper.calls == [30.0], "the other client waited out the pause before sending"

    other = client(session, base_url, Sleeper(), limits=InstallationLimits())
    assert await other.getitem("/b") == {"b": 1}, "another installation is not paused"


async def test_pause_longer_than_the_budget_is_not_sent(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    fake.script[("POST", "/c")] = [(201, {}, {})]
    shared = InstallationLimits()
    shared.pause(600, sleeper.clock())
    gh = client(session, base_url, sleeper, limits=shared, retry=RetryPolicy(total_seconds=60))
    with pytest.raises(GitHubPaused, match="pause 600s"):
        await gh.post("/c", data={})
    assert fake.seen == [] and sleeper.calls == []


async def test_spent_quota_pauses_until_reset(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    now = 1_700_000_000.0
    fake.script[("GET", "/last")] = [(200, spent_quota(reset=now + 20), {"last": True})]
    fake.script[("GET", "/next")] = [(200, {}, {"next": True})]
    shared = InstallationLimits()
    gh = client(session, base_url, sleeper, limits=shared, wall_clock=lambda: now)
    assert await gh.getitem("/last") == {"last": True}
    assert sleeper.calls == []
    assert await gh.getitem("/next") == {"next": True}
    assert sleeper.calls == [21.0], "no request while the hourly quota is spent"


async def test_low_quota_postpones_comments_but_not_check_runs(
    session: aiohttp.ClientSession, base_url: str, fake: FakeGitHub, sleeper: Sleeper
) -> None:
    reset = time.time() + 1800
    low = {"x-ratelimit-remaining": "40", "x-ratelimit-limit": "5000", "x-ratelimit-reset": str(int(reset))}
    fake.script[("GET", "/repos/o/r")] = [(200, low, {"ok": 1})]
    fake.script[("POST", "/repos/o/r/check-runs")] = [(201, low, {"id": 1})]
    metrics = Metrics()
    gh = client(session, base_url, sleeper, metrics=metrics)
    await gh.getitem("/repos/o/r")
    with pytest.raises(GitHubDeferred):
        await gh.post("/repos/o/r/issues/7/comments", data={"body": "hi"})
    with pytest.raises(GitHubDeferred):
        await gh.post("/repos/o/r/issues/comments/9/reactions", data={"content": "eyes"})
    assert await gh.post("/repos/o/r/check-runs", data={"name": "x", "head_sha": "a" * 40}) == {"id": 1}
    assert fake.paths("POST") == ["/repos/o/r/check-runs"]  # the comment and reaction were not sent
    assert metrics.registry.get_sample_value("gitops_bot_github_rate_limit_low") == 1.0
    assert (
        metrics.registry.get_sample_value("gitops_bot_github_deferred_writes_total", {"kind": "comment"})
        == 2.0
    )
    # After the reset the quota is whole again and comments go out.
    gh.limits.reset_at = time.time() - 1
    fake.script[("POST", "/repos/o/r/issues/7/comments")] = [(201, {}, {"id": 2})]
    assert await gh.post("/repos/o/r/issues/7/comments", data={"body": "hi"}) == {"id": 2}
    assert metrics.registry.get_sample_value("gitops_bot_github_rate_limit_low") == 0.0


def test_only_comment_writes_can_wait() -> None:
    assert deferrable_kind("POST", "https://api.github.com/repos/o/r/issues/3/comments") == "comment"
    assert deferrable_kind("PATCH", "https://api.github.com/repos/o/r/issues/comments/3") == "comment"
    assert deferrable_kind("GET", "https://api.github.com/repos/o/r/issues/3/comments") is None
    assert deferrable_kind("POST", "https://api.github.com/repos/o/r/check-runs") is None
    assert deferrable_kind("PATCH", "https://api.github.com/repos/o/r/check-runs/5") is None
    assert deferrable_kind("PUT", "https://api.github.com/repos/o/r/pulls/3/merge") is None
