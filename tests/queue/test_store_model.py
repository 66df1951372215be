"""Stateful property test: each store behaves like a small model of bot/queue/base.py's contract.

Hypothesis drives random sequences of put / claim / complete / fail (retry soon, retry later,
dead) / retry against the real store and a pure model, and checks after every step that both
agree on every delivery's status and attempts, and that ``claim`` hands out exactly the
deliveries the contract says are runnable, in arrival order, never two of one pull request.
"""

from __future__ import annotations

import asyncio
import importlib
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bot.queue.base import DeliveryStore, Status
from bot.queue.postgres import PostgresStore

OPEN = {Status.PENDING, Status.PROCESSING, Status.FAILED}
KEYS = st.sampled_from(["o/r#1", "o/r#2", None])
WORKERS = st.sampled_from(["w1", "w2"])


@dataclass
class Row:
    seq: int
    key: str | None
    status: Status = Status.PENDING
    attempts: int = 0
    owner: str | None = None
    due: bool = True  # for failed rows: is the retry time in the past?


class Model:
    """The contract of bot/queue/base.py, with leases that never expire during a run."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}

    def put(self, did: str, key: str | None) -> bool:
        if did in self.rows:
            return False
        self.rows[did] = Row(seq=len(self.rows), key=key)
        return True

    def runnable(self, *, strict: bool) -> list[str]:
        """Claimable ids in order; ``strict`` also waits for a *later* leased row of the same key."""
        out = []
        for did, row in sorted(self.rows.items(), key=lambda kv: kv[1].seq):
            if not (row.status == Status.PENDING or (row.status == Status.FAILED and row.due)):
                continue
            if row.key is not None:
                same = [r for r in self.rows.values() if r.key == row.key and r is not row]
                if any(r.seq < row.seq and r.status in OPEN for r in same):
                    continue
                if strict and any(r.status == Status.PROCESSING for r in same):
                    continue
            out.append(did)
        return out

    def lease(self, did: str, worker: str) -> None:
        row = self.rows[did]
        row.status, row.owner, row.attempts = Status.PROCESSING, worker, row.attempts + 1


class StoreMachine(RuleBasedStateMachine):
    """Runs one store (chosen by the test) on a private event loop."""

    make_store: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store: DeliveryStore = self.run(type(self).make_store())
        self.model = Model()
        self.next_id = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()

    @initialize()
    def start(self) -> None:
        assert self.run(self.store.counts()) == dict.fromkeys(Status, 0)

    @rule(key=KEYS)
    def put(self, key: str | None) -> None:
        did = f"d{self.next_id}"
        self.next_id += 1
        assert self.run(self.store.put(did, "pull_request", b"{}", ordering_key=key)) == self.model.put(
            did, key
        )

    @precondition(lambda self: self.model.rows)
    @rule(data=st.data())
    def put_duplicate(self, data: st.DataObject) -> None:
        did = data.draw(st.sampled_from(sorted(self.model.rows)))
        assert self.run(self.store.put(did, "push", b"[]")) is False

    @rule(worker=WORKERS, limit=st.integers(1, 4))
    def claim(self, worker: str, limit: int) -> None:
        got = [d.id for d in self.run(self.store.claim(worker, limit=limit, lease_seconds=600))]
        loose, strict = self.model.runnable(strict=False)[:limit], self.model.runnable(strict=True)[:limit]
        assert got in (loose, strict), f"claimed {got}, contract says {loose} (or {strict})"
        keys = [self.model.rows[d].key for d in got if self.model.rows[d].key is not None]
        assert len(keys) == len(set(keys)), "two deliveries of one pull request in one claim"
        for did in got:
            self.model.lease(did, worker)

    def _processing(self) -> list[str]:
        return sorted(d for d, r in self.model.rows.items() if r.status == Status.PROCESSING)

    @precondition(lambda self: self._processing())
    @rule(data=st.data(), right_worker=st.booleans())
    def complete(self, data: st.DataObject, right_worker: bool) -> None:
        did = data.draw(st.sampled_from(self._processing()))
        row = self.model.rows[did]
        worker = row.owner if right_worker else "someone-else"
        self.run(self.store.complete(did, str(worker)))
        if right_worker:
            row.status, row.owner = Status.DONE, None

    @precondition(lambda self: self._processing())
    @rule(data=st.data(), outcome=st.sampled_from(["soon", "later", "dead"]))
    def fail(self, data: st.DataObject, outcome: str) -> None:
        did = data.draw(st.sampled_from(self._processing()))
        row = self.model.rows[did]
        now = datetime.now(UTC)
        retry_at = {"soon": now - timedelta(seconds=1), "later": now + timedelta(hours=1), "dead": None}[
            outcome
        ]
        self.run(self.store.fail(did, str(row.owner), f"boom {outcome}", retry_at))
        row.status = Status.DEAD if retry_at is None else Status.FAILED
        row.due, row.owner = outcome == "soon", None

    @precondition(lambda self: self.model.rows)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        did = data.draw(st.sampled_from(sorted(self.model.rows)))
        row = self.model.rows[did]
        expected = row.status in (Status.FAILED, Status.DEAD)
        assert self.run(self.store.retry(did)) is expected
        if expected:
            row.status, row.attempts, row.due = Status.PENDING, 0, True

    @invariant()
    def same_as_model(self) -> None:
        counts = self.run(self.store.counts())
        expected = dict.fromkeys(Status, 0)
        for row in self.model.rows.values():
            expected[row.status] += 1
        assert counts == expected
        for did, row in self.model.rows.items():
            got = self.run(self.store.get(did))
            assert got is not None and (got.status, got.attempts) == (row.status, row.attempts), did


MACHINE_SETTINGS = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_postgres_store_follows_the_model(pg_dsn: str) -> None:
    async def make() -> DeliveryStore:
        store = PostgresStore(pg_dsn, max_size=2)
        await store.open()
        await store.pool.execute("TRUNCATE gitops_bot_deliveries, gitops_bot_state RESTART IDENTITY")
        return store

    machine = type("PostgresMachine", (StoreMachine,), {"make_store": staticmethod(make)})
    machine.TestCase.settings = MACHINE_SETTINGS
    machine.TestCase().runTest()


def test_sqlite_store_follows_the_model() -> None:
    try:
        sqlite = importlib.import_module("bot.queue.sqlite")
    except ModuleNotFoundError:
        pytest.skip("bot.queue.sqlite is not on this branch yet")
    workdir = Path(tempfile.mkdtemp(prefix="gitops-bot-model-"))

    async def make() -> DeliveryStore:
        store: DeliveryStore = sqlite.SQLiteStore(workdir / f"{len(list(workdir.iterdir()))}.db")
        await store.open()
        return store

    machine = type("SQLiteMachine", (StoreMachine,), {"make_store": staticmethod(make)})
    machine.TestCase.settings = MACHINE_SETTINGS
    machine.TestCase().runTest()
