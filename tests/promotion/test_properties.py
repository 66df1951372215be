"""Property tests: the history marker survives any title and diff; durations and cron never crash."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.promotion.environments import EnvironmentConfigError, parse_duration
from bot.domain.promotion.freeze import Cron
from bot.domain.promotion.plan import History, Hop, pr_body, read_marker

shas = st.text("0123456789abcdef", min_size=40, max_size=40)


@settings(max_examples=60, deadline=None)
@given(title=st.text(max_size=300), diff=st.text(max_size=2000), sha=shas, pr=st.integers(1, 10**6))
def test_marker_round_trips_whatever_the_title_and_diff(title: str, diff: str, sha: str, pr: int) -> None:
    h = History(
        pr,
        title,
        "dev",
        "staging",
        pr,
        sha,
        "cherry-pick",
        (Hop("dev", pr, sha),),
        (sha,),
        "2026-11-18T10:00:00Z",
    )
    body = pr_body(h, repo="org/fleet", diff_markdown=diff, checklist="- [ ] health", auto_merge=True)
    assert read_marker(body) == h
    assert len(body) < 65_536


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=20))
def test_parse_duration_answers_or_refuses(text: str) -> None:
    try:
        assert parse_duration(text).total_seconds() >= 0
    except EnvironmentConfigError as exc:
        assert repr(text) in str(exc) or "negative" in str(exc)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="0123456789*/-, abcdefghijklmnopqrstuvwxyz", max_size=30))
def test_cron_answers_or_refuses(expr: str) -> None:
    try:
        cron = Cron.parse(expr)
    except EnvironmentConfigError as exc:
        assert "schedule" in str(exc)
    else:
        assert isinstance(cron.matches(datetime(2026, 11, 20, 16, 0, tzinfo=UTC)), bool)
