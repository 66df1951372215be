"""Tell the pull request when the bot gave up on one of its deliveries, and clear it after.

A dead letter is otherwise visible only to operators (``gitops-bot deliveries``). For a
delivery about a pull request, the bot writes one sticky comment (key ``error``) naming the
parts that failed — exception types only, never messages, which could carry data from
GitHub — and what to do. The next delivery for the same pull request that succeeds deletes
it. Both are best effort: a failure here is logged, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import gidgethub.abc

from bot.github.comments import delete_sticky_comment, upsert_sticky_comment
from bot.github.writes import GitHubWrites
from bot.queue.base import Delivery, DeliveryStore
from bot.service.dispatch import HandlerFailure

log = logging.getLogger(__name__)

ERROR_KEY = "error"


def error_state_key(ordering_key: str) -> str:
    """Return the service-state key that records a failure comment on a pull request."""
    return f"error-comment:{ordering_key}"


def pull_request_of(ordering_key: str | None) -> tuple[str, int] | None:
    """Return ``(owner/repo, number)`` of an ordering key ``owner/repo#number``, else None."""
    if not ordering_key or "#" not in ordering_key:
        return None
    repo, _, number = ordering_key.rpartition("#")
    return (repo, int(number)) if number.isdigit() and "/" in repo else None


def dead_letter_body(delivery: Delivery, failures: Sequence[HandlerFailure], error: str) -> str:
    """Return the comment shown on a pull request when a delivery about it is dead-lettered."""
    label = delivery.event + (f".{delivery.action}" if delivery.action else "")
    lines = [
        "### :warning: gitops-bot could not finish",
        "",
        f"Processing `{label}` (delivery `{delivery.id}`) failed {delivery.attempts} time(s), so the "
        "checks and comments of this pull request may be out of date.",
        "",
    ]
    if failures:
        lines += ["| Part | Problem |", "| --- | --- |"]
        for failure in failures:
            kind = failure.error.split(":", 1)[0]
            lines.append(f"| `{failure.handler}` | `{kind}` |")
    else:
        kind = error.split(":", 1)[0] if ":" in error[:80] else "the delivery could not be read"
        lines.append(f"The delivery itself failed before any check ran (`{kind}`).")
    lines += [
        "",
        "**What to do:** push a new commit or comment `/validate` to try again. If it keeps failing, "
        f"ask an operator to look at the service logs and run `gitops-bot deliveries retry {delivery.id}`.",
        "",
        "<sub>This comment disappears once the bot processes this pull request successfully.</sub>",
    ]
    return "\n".join(lines)


async def report_dead_letter(
    gh: gidgethub.abc.GitHubAPI,
    store: DeliveryStore,
    delivery: Delivery,
    failures: Sequence[HandlerFailure],
    error: str,
    *,
    writes: GitHubWrites,
    bot_login: str | None = None,
) -> bool:
    """Write the dead-letter comment on the delivery's pull request; return True when written."""
    target = pull_request_of(delivery.ordering_key)
    if target is None or delivery.ordering_key is None:
        return False
    repo, number = target
    try:
        await upsert_sticky_comment(
            gh,
            repo,
            number,
            ERROR_KEY,
            dead_letter_body(delivery, failures, error),
            writes=writes,
            bot_login=bot_login,
        )
        await store.set_state(error_state_key(delivery.ordering_key), delivery.id)
    except Exception:
        log.exception("could not tell %s#%d that delivery %s failed", repo, number, delivery.id)
        return False
    return True


async def clear_dead_letter(
    gh: gidgethub.abc.GitHubAPI | None,
    store: DeliveryStore,
    delivery: Delivery,
    *,
    bot_login: str | None = None,
) -> bool:
    """Delete the dead-letter comment of the delivery's pull request if one was written; True if so.

    Costs one local store read when there is nothing to clear.
    """
    if delivery.ordering_key is None or gh is None:
        return False
    target = pull_request_of(delivery.ordering_key)
    if target is None or not await store.get_state(error_state_key(delivery.ordering_key)):
        return False
    repo, number = target
    try:
        await delete_sticky_comment(gh, repo, number, ERROR_KEY, bot_login=bot_login)
        await store.set_state(error_state_key(delivery.ordering_key), "")
    except Exception:
        log.exception("could not clear the failure comment on %s#%d", repo, number)
        return False
    return True
