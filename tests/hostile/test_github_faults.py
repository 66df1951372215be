"""Property tests: whatever mix of faults GitHub answers with, the client ends in a defined way.

Each example plays a random sequence of answers (5xx, rate limits, dropped connections, success)
against a real aiohttp server and checks the retry contract of bot.github.client: idempotent
requests get through when the faults fit in the retry budget, writes are never repeated after a
fault that may hide an applied write, and nothing but a GitHub HTTP error or a connection error
ever escapes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import gidgethub
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.github.client import GitHubClient, RetryPolicy
from tests.github.fakegh import FakeGitHub, serve

FAULTS: dict[str, tuple[int, dict[str, str], Any]] = {
    "500": (500, {}, {"message": "Server Error"}),
    "502": (502, {}, "<html>Bad Gateway</html>"),
    "503": (503, {"Retry-After": "2"}, {"message": "Service Unavailable"}),
    "504": (504, {}, "Gateway Timeout"),
    "429": (429, {"Retry-After": "1"}, {"message": "Too Many Requests"}),
    "403rl": (403, {"Retry-After": "3"}, {"message": "You have exceeded a secondary rate limit."}),
    "drop": (0, {}, "DROP"),
}
OK: tuple[int, dict[str, str], Any] = (200, {"x-ratelimit-remaining": "4000"}, {"ok": True})
WRITE_SAFE = {"502", "503", "504", "429", "403rl"}  # a POST may be repeated after these
POLICY = RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=8.0, total_seconds=60.0)


async def play(method: str, faults: list[str]) -> tuple[str, int, int, list[float]]:
    """Return (outcome, requests the server saw, attempts the client made, sleeps)."""
    fake = FakeGitHub(public_key="")
    fake.script[(method, "/repos/o/r/issues/1/comments")] = [*(FAULTS[f] for f in faults), OK]
    sleeps: list[float] = []
    clock = [1000.0]

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    async with serve(fake) as url, aiohttp.ClientSession() as session:
        gh = GitHubClient(
            session,
            "tests",
            oauth_token="t",
            base_url=url,
            retry=POLICY,
            sleep=sleep,
            monotonic=lambda: clock[0],
        )
        try:
            if method == "GET":
                await gh.getitem("/repos/o/r/issues/1/comments")
            else:
                await gh.post("/repos/o/r/issues/1/comments", data={"body": "hi"})
            outcome = "ok"
        except gidgethub.HTTPException as exc:
            outcome = f"http {exc.status_code}"
        except aiohttp.ClientError:
            outcome = "connection"
    return outcome, len(fake.seen), gh.attempts, sleeps


fault_lists = st.lists(st.sampled_from(sorted(FAULTS)), max_size=7)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(faults=fault_lists)
def test_get_survives_any_faults_within_budget(faults: list[str]) -> None:
    # aiohttp itself resends an idempotent request once when a reused keep-alive connection
    # drops, which may consume the next scripted fault: count the client's own attempts.
    outcome, _sent, attempts, sleeps = asyncio.run(play("GET", faults))
    assert attempts <= POLICY.max_attempts
    assert sum(sleeps) <= POLICY.total_seconds
    if len(faults) < POLICY.max_attempts:
        assert outcome == "ok"
    if outcome != "ok":
        assert attempts == POLICY.max_attempts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(faults=fault_lists)
def test_post_is_never_repeated_after_an_ambiguous_fault(faults: list[str]) -> None:
    outcome, sent, attempts, _ = asyncio.run(play("POST", faults))
    assert sent == attempts, "POST is never resent behind the client's back"
    ambiguous = next((i for i, f in enumerate(faults) if f not in WRITE_SAFE), None)
    if ambiguous is not None and ambiguous < POLICY.max_attempts:
        assert sent == ambiguous + 1, "stopped at the first fault that may hide an applied write"
        assert outcome in {"http 500", "connection"}
    elif len(faults) < POLICY.max_attempts:
        assert outcome == "ok" and sent == len(faults) + 1
    else:
        assert outcome != "ok" and sent == POLICY.max_attempts
