"""Remember which repositories (and installations) the bot hears from, for the reconciler.

The reconciler cannot list installations (``GET /app/installations`` is outside the API subset),
so every delivery that names a repository adds it to the list kept in the delivery store
(see :mod:`handlers.reconciler`); ``installation`` and ``installation_repositories`` events add and
remove repositories in bulk. Without a store this does nothing.
"""

from __future__ import annotations

import logging

import gidgethub.abc
import gidgethub.routing
import gidgethub.sansio

from bot.service.context import HandlerContext
from handlers.reconciler import remember_repos_from_payload

log = logging.getLogger(__name__)

router = gidgethub.routing.Router()

EVENTS = (
    "installation",
    "installation_repositories",
    "pull_request",
    "pull_request_review",
    "issue_comment",
    "push",
    "check_suite",
    "status",
)


async def remember(event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext) -> None:
    """Add the delivery's repository to the reconciler's list (or apply installation changes).

    Best effort: a store error is logged, never raised; it is bookkeeping, not worth a retry of
    the delivery (the worker runs every handler of a delivery whatever the others do).
    """
    try:
        await remember_repos_from_payload(ctx.store, event.event, event.data)
    except Exception:
        log.exception("could not remember the repository of delivery %s", ctx.delivery_id)


for _event in EVENTS:
    router.add(remember, _event)
