"""The delivery store interface shared by the SQLite and PostgreSQL implementations.

Semantics (both stores must pass the same conformance tests):

* :meth:`DeliveryStore.put` stores a delivery once per ``X-GitHub-Delivery`` id and returns
  ``False`` for a duplicate. It returns only after the row is durable (committed).
* :meth:`DeliveryStore.claim` leases up to ``limit`` runnable deliveries to one worker. A
  delivery is runnable when it is ``pending`` or ``failed`` with ``next_attempt_at`` in the
  past, or ``processing`` with an expired lease (its worker died). Deliveries that share an
  ``ordering_key`` (one pull request) are handed out strictly in arrival order: one is not
  claimable while an earlier one with the same key is pending, processing or failed.
* :meth:`DeliveryStore.complete` marks a delivery ``done``; :meth:`DeliveryStore.fail` records
  the error and either schedules a retry (``failed``) or, with ``retry_at=None``, makes it
  a dead letter (``dead``), which no longer blocks its ordering key.
* :meth:`DeliveryStore.retry` puts a ``dead`` or ``failed`` delivery back to ``pending``.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

T = TypeVar("T")


class Status(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stored webhook delivery. Carries ids and the payload, never a token."""

    id: str
    event: str
    action: str | None
    payload: bytes
    installation_id: int | None
    ordering_key: str | None
    status: Status
    attempts: int
    received_at: datetime
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    updated_at: datetime | None = None


class DeliveryStore(abc.ABC):
    """A durable, at-least-once queue of webhook deliveries."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the schema when missing."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """Return True when the store answers (used by ``/readyz``)."""

    @abc.abstractmethod
    async def put(
        self,
        delivery_id: str,
        event: str,
        payload: bytes,
        *,
        action: str | None = None,
        installation_id: int | None = None,
        ordering_key: str | None = None,
    ) -> bool:
        """Store a delivery durably; return False when the id was already stored."""

    @abc.abstractmethod
    async def claim(self, worker_id: str, *, limit: int = 1, lease_seconds: float = 300.0) -> list[Delivery]:
        """Lease up to ``limit`` runnable deliveries to ``worker_id`` (see module docs)."""

    @abc.abstractmethod
    async def extend_lease(self, delivery_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Push the lease ``worker_id`` holds on a delivery ``lease_seconds`` from now; False when lost.

        The worker calls it while a handler runs, so a run longer than the lease is not claimed
        a second time by another worker.
        """

    @abc.abstractmethod
    async def prune_done(self, older_than: timedelta) -> int:
        """Delete ``done`` deliveries last updated more than ``older_than`` ago; return how many."""

    @abc.abstractmethod
    def advisory_lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold a lock on ``key`` shared by every process using this store (find-then-write to GitHub)."""

    @abc.abstractmethod
    async def complete(self, delivery_id: str, worker_id: str) -> None:
        """Mark a delivery done."""

    @abc.abstractmethod
    async def fail(self, delivery_id: str, worker_id: str, error: str, retry_at: datetime | None) -> None:
        """Record a failure: retry at ``retry_at``, or dead-letter when it is None."""

    @abc.abstractmethod
    async def retry(self, delivery_id: str) -> bool:
        """Put a failed or dead delivery back to pending; False when there is no such delivery."""

    @abc.abstractmethod
    async def retry_dead(self) -> int:
        """Put every dead delivery back to pending; return how many."""

    @abc.abstractmethod
    async def get(self, delivery_id: str) -> Delivery | None:
        """Return one delivery."""

    @abc.abstractmethod
    async def counts(self) -> dict[Status, int]:
        """Return the number of deliveries in each status (every status present)."""

    @abc.abstractmethod
    async def recent(self, *, status: Status | None = None, limit: int = 20) -> list[Delivery]:
        """Return the most recently updated deliveries, optionally of one status."""

    @abc.abstractmethod
    async def get_state(self, key: str) -> str | None:
        """Read a small piece of service state (for example the last seen hook delivery)."""

    @abc.abstractmethod
    async def set_state(self, key: str, value: str) -> None:
        """Write a small piece of service state."""

    async def delete_state(self, key: str) -> None:
        """Remove a piece of service state (this fallback empties it; the SQL stores delete the row)."""
        await self.set_state(key, "")

    async def update_state(self, key: str, decide: Callable[[str | None], tuple[str | None, T]]) -> T:
        """Read ``key``; ``decide`` (pure) returns (value to store, or None to keep it; result).

        The stores shared by tasks or replicas (SQLite, PostgreSQL) do this as one atomic
        operation, so two deliveries never both read the same old value; this fallback is for
        single-task stand-ins.
        """
        value, result = decide(await self.get_state(key))
        if value is not None:
            await self.set_state(key, value)
        return result
