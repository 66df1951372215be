"""How the bot writes its own objects on GitHub: one instance per process, carried on the context.

:class:`GitHubWrites` holds what every find-then-write of a check run or sticky comment needs:

* the lock of one object (``scope``/``key``): an asyncio lock in this process and, when the
  delivery store offers one, the store's lock shared by every process using it (PostgreSQL
  advisory locks across replicas, record locks on the SQLite file's ``-locks`` file), so two
  deliveries of one PR never both find nothing and both create;
* the App's id, so check runs another App (a CI system) posted under the same name on the same
  commit are not mistaken for the bot's own (GitHub would answer 403 to an update).

The worker builds one from its store and settings and hands it to every handler through
:class:`bot.service.context.HandlerContext` (``ctx.writes``); a context built without one (tests with
fakes) gets a private instance: locks in this process only, every App's runs considered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

LockProvider = Callable[[str], AbstractAsyncContextManager[None]]


@dataclass
class GitHubWrites:
    """The write locks and the App id of one process (see the module docs)."""

    app_id: int | None = None
    shared_lock: LockProvider | None = None
    _held: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict, repr=False)

    @contextlib.asynccontextmanager
    async def lock(self, scope: str, key: str) -> AsyncIterator[None]:
        """Hold the lock of one find-then-write of the bot's GitHub objects named ``scope``/``key``.

        Not reentrant.
        """
        name = f"{scope}:{key}"
        lock, users = self._held.get(name, (asyncio.Lock(), 0))
        self._held[name] = (lock, users + 1)
        try:
            async with lock:
                if self.shared_lock is None:
                    yield
                else:
                    async with self.shared_lock(f"gitops-bot:{name}"):
                        yield
        finally:
            lock, users = self._held[name]
            if users <= 1:
                del self._held[name]
            else:
                self._held[name] = (lock, users - 1)

    def head_lock(self, repo: str, head_sha: str) -> AbstractAsyncContextManager[None]:
        """Hold the lock of one head commit's check runs while finding and writing them.

        The worker's concurrent deliveries and the reconciler may check the same head together;
        unserialised, each found no run and created one.
        """
        return self.lock("check-runs", f"{repo}@{head_sha}")

    def made_by_us(self, run: Mapping[str, Any]) -> bool:
        """Whether a listed check run is this App's (every run counts when the App id is unknown)."""
        app = run.get("app")
        return self.app_id is None or not isinstance(app, Mapping) or app.get("id") in (None, self.app_id)
