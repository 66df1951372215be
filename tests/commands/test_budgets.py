"""The pure budget decisions: refusal replies per PR per hour, command bursts per person."""

from __future__ import annotations

from bot.domain.budgets import BURST_LIMIT, BURST_WINDOW, REFUSAL_WINDOW, burst, refusal_reply_due


def test_one_refusal_reply_per_window() -> None:
    assert refusal_reply_due(None, 1000.0)
    assert not refusal_reply_due("1000.0", 1000.0 + REFUSAL_WINDOW - 1)
    assert refusal_reply_due("1000.0", 1000.0 + REFUSAL_WINDOW)
    assert refusal_reply_due("garbage", 1000.0)  # unreadable state never silences the bot for good
    assert refusal_reply_due("5000.0", 1000.0)  # a clock that went back does not either


def test_burst_allows_the_limit_then_refuses_with_one_reply() -> None:
    state: str | None = None
    decisions = []
    for i in range(BURST_LIMIT + 3):
        decision = burst(state, 100.0 + i)
        state = decision.state
        decisions.append(decision)
    assert [d.allowed for d in decisions] == [True] * BURST_LIMIT + [False] * 3
    assert [d.reply for d in decisions] == [False] * BURST_LIMIT + [True, False, False]
    assert 0 < decisions[-1].retry_in <= BURST_WINDOW
    fresh = burst(state, 100.0 + BURST_WINDOW)
    assert fresh.allowed and fresh.state.endswith(" 1")
