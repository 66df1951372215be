"""Run every handler of a gidgethub router for one event, isolated from each other.

gidgethub's ``Router.dispatch`` stops at the first handler that raises; here every handler
runs (in a stable order: module, then name) and the failures are returned, so one broken
feature never starves the others. The worker and ``gitops-bot replay`` share this code path.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gidgethub.routing
import gidgethub.sansio

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HandlerFailure:
    """One handler that raised: its qualified name and a one-line error (no traceback, no token)."""

    handler: str
    error: str

    def __str__(self) -> str:
        return f"{self.handler}: {self.error}"


def handler_name(callback: Callable[..., Any]) -> str:
    """Return ``module.qualname`` of a handler."""
    module = getattr(callback, "__module__", "?")
    qualname = getattr(callback, "__qualname__", repr(callback))
    return f"{module}.{qualname}"


def handlers_for(router: gidgethub.routing.Router, event: gidgethub.sansio.Event) -> list[Callable[..., Any]]:
    """Return the handlers ``router`` would call for ``event``, in a stable order."""
    return sorted(router.fetch(event), key=handler_name)


async def dispatch_isolated(
    router: gidgethub.routing.Router, event: gidgethub.sansio.Event, *args: Any, **kwargs: Any
) -> list[HandlerFailure]:
    """Call every handler for ``event``; return the failures (empty when all succeeded).

    Exceptions are caught per handler; cancellation still propagates. The full traceback is
    logged at ERROR with the delivery id, the returned error keeps the type and message only.
    """
    failures: list[HandlerFailure] = []
    for callback in handlers_for(router, event):
        name = handler_name(callback)
        try:
            await callback(event, *args, **kwargs)
        except Exception as exc:
            log.error(
                "handler %s failed on delivery %s (%s): %s",
                name,
                event.delivery_id,
                event.event,
                "".join(traceback.format_exception(exc)).rstrip(),
            )
            failures.append(HandlerFailure(name, f"{type(exc).__name__}: {exc}"[:1000]))
    return failures


def summarize_failures(failures: Sequence[HandlerFailure]) -> str:
    """Return the text stored as a delivery's ``last_error``."""
    return "; ".join(str(f) for f in failures)
