"""All webhook handlers, one gidgethub Router per module, combined into :data:`ROUTER`.

A feature is a module (or package) in this package that defines
``router = gidgethub.routing.Router()``; it is picked up here without touching this file.
Modules are imported in name order, and an import error is not hidden: a broken handler
module stops start-up with its traceback. ``GITOPS_BOT_HANDLERS`` (see :mod:`bot.service.settings`)
can narrow the service to some modules, through :func:`combined_router`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

import gidgethub.routing


def _routers() -> dict[str, gidgethub.routing.Router]:
    found: dict[str, gidgethub.routing.Router] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, gidgethub.routing.Router):
            found[info.name] = router
    return found


ROUTERS = _routers()


def available() -> list[str]:
    """Return the names of the handler modules that define a router."""
    return sorted(ROUTERS)


def combined_router(only: Iterable[str] | None = None) -> gidgethub.routing.Router:
    """Return one Router with the routes of every handler module, or of the ``only`` ones.

    Raises KeyError naming the first unknown module.
    """
    names = available() if only is None else list(only)
    for name in names:
        if name not in ROUTERS:
            raise KeyError(name)
    return gidgethub.routing.Router(*(ROUTERS[name] for name in names))


ROUTER = combined_router()
