"""Budgets for what people can make the bot do (pure: stored state and a clock in, decisions out).

* **Refusal replies**: someone without the commands' permission gets at most one reply per
  pull request per :data:`REFUSAL_WINDOW` seconds; later refusals get only a 👎 reaction.
* **Command bursts**: one person may run at most :data:`BURST_LIMIT` commands per
  :data:`BURST_WINDOW` seconds in a repository; past it commands are not run, and the first
  refused one per window gets a reply saying when to try again.

The state lives in the bot's store (``get_state``/``set_state``) under the keys below, so
every replica applies the same budget.
"""

from __future__ import annotations

from dataclasses import dataclass

REFUSAL_WINDOW = 3600.0
BURST_LIMIT = 10
BURST_WINDOW = 600.0


def refusal_key(repo: str, number: int) -> str:
    """Store key of the last refusal reply on one pull request."""
    return f"budget:refusal:{repo}#{number}"


def burst_key(repo: str, user: str) -> str:
    """Store key of one person's command window in one repository."""
    return f"budget:burst:{repo}:{user.lower()}"


def refusal_reply_due(stored: str | None, now: float, window: float = REFUSAL_WINDOW) -> bool:
    """True when no refusal reply was written on the PR within ``window`` seconds of ``now``."""
    try:
        last = float(stored) if stored else None
    except ValueError:
        last = None
    return last is None or not (0 <= now - last < window)


@dataclass(frozen=True, slots=True)
class Burst:
    """The decision on one command: run it or not, what to store, whether to say so."""

    allowed: bool
    state: str
    reply: bool  # the first refusal of the window gets a reply, later ones only a reaction
    retry_in: float  # seconds until the window ends


def burst(stored: str | None, now: float, *, limit: int = BURST_LIMIT, window: float = BURST_WINDOW) -> Burst:
    """Count one more command in a fixed window (``"<start> <count>"``) and decide."""
    try:
        start_text, count_text = (stored or "").split()
        start, count = float(start_text), int(count_text)
    except ValueError:
        start, count = now, 0
    if not (0 <= now - start < window):
        start, count = now, 0
    count += 1
    retry_in = max(0.0, start + window - now)
    return Burst(
        allowed=count <= limit,
        state=f"{start:.3f} {count}",
        reply=count == limit + 1,
        retry_in=retry_in,
    )
