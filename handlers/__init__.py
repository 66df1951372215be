"""All webhook handlers, one gidgethub Router per module, combined into :data:`ROUTER`.

A feature is a module in this package that defines ``router = gidgethub.routing.Router()``;
it is picked up here without touching this file. Modules are imported in name order, and an
import error is not hidden: a broken handler module stops start-up with its traceback.
"""

from __future__ import annotations

import importlib
import pkgutil

import gidgethub.routing


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def combined_router() -> gidgethub.routing.Router:
    """Import every handler module and return one Router holding all their routes."""
    routers = []
    for name in _modules():
        module = importlib.import_module(f"{__name__}.{name}")
        router = getattr(module, "router", None)
        if isinstance(router, gidgethub.routing.Router):
            routers.append(router)
    return gidgethub.routing.Router(*routers)


ROUTER = combined_router()
