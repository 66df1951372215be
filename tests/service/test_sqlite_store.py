"""The SQLite delivery store against the DeliveryStore semantics (bot/queue/base.py)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zstandard

from bot.queue import UnsupportedStoreURL, open_store
from bot.queue.base import Status
from bot.queue.sqlite import SQLiteStore, _encode_rows, decode_payload


async def test_put_is_durable_and_deduplicated(store: SQLiteStore, db_path: Path) -> None:
    assert await store.put("a", "push", b'{"x": 1}', action=None, installation_id=7, ordering_key=None)
    assert not await store.put("a", "push", b'{"x": 2}')
    # Another connection sees the committed row right away.
    row = (
        sqlite3.connect(db_path).execute("SELECT payload, installation_id, status FROM deliveries").fetchall()
    )
    assert row == [(b'{"x": 1}', 7, "pending")]


async def test_large_payloads_are_stored_compressed_and_read_back_exactly(
    store: SQLiteStore, db_path: Path
) -> None:
    payload = json.dumps(
        {
            "action": "opened",
            "repository": {"url": "https://api.github.com/repos/o/r"}
            | {f"{k}_url": f"https://api.github.com/repos/o/r/{k}{{/number}}" for k in "abcdefghijklmnop"},
        }
    ).encode()
    noise = os.urandom(3000)  # incompressible: kept as it is
    assert await store.put("big", "pull_request", payload)
    assert await store.put("noise", "push", noise)
    assert await store.put("small", "push", b'{"zen": "x"}')
    rows = dict(
        (r[0], (r[1], r[2]))
        for r in sqlite3.connect(db_path).execute("SELECT id, length(payload), payload_codec FROM deliveries")
    )
    assert rows["big"][1] == "zstd" and rows["big"][0] < len(payload) / 3
    assert rows["noise"] == (3000, None)
    assert rows["small"] == (len(b'{"zen": "x"}'), None)
    for did, body in (("big", payload), ("noise", noise), ("small", b'{"zen": "x"}')):
        got = await store.get(did)
        assert got is not None and got.payload == body
    claimed = {d.id: d.payload for d in await store.claim("w", limit=5)}
    assert claimed == {"big": payload, "noise": noise, "small": b'{"zen": "x"}'}


def _bodies() -> dict[str, bytes]:
    big = json.dumps(
        {"action": "opened", "urls": [f"https://api.github.com/repos/o/r/{i}" for i in range(200)]}
    )
    return {
        "big-1": big.encode(),
        "noise": os.urandom(3000),  # incompressible: kept as it is
        "small": b'{"zen": "x"}',  # under COMPRESS_MIN_BYTES
        "big-2": big.replace("opened", "closed").encode(),
    }


def test_a_batch_is_compressed_in_one_call_and_every_row_decodes_to_its_payload() -> None:
    bodies = _bodies()
    rows = [(did, "push", None, body, None, None) for did, body in bodies.items()]
    stored = _encode_rows(rows, zstandard.ZstdCompressor(level=1))
    assert [r[0] for r in stored] == list(bodies)  # order and ids kept
    codecs = {r[0]: r[6] for r in stored}
    assert codecs == {"big-1": "zstd", "noise": None, "small": None, "big-2": "zstd"}
    for row in stored:
        assert decode_payload(row[3], row[6]) == bodies[row[0]]
    # A batch with one large payload takes the single-payload path; the result reads the same.
    (one,) = _encode_rows([rows[0]], zstandard.ZstdCompressor(level=1))
    assert one[6] == "zstd" and decode_payload(one[3], one[6]) == bodies["big-1"]


async def test_concurrent_puts_share_a_commit_and_read_back_exactly(store: SQLiteStore) -> None:
    bodies = {f"{did}-{i}": body for i in range(20) for did, body in _bodies().items()}
    commits = store.commits
    results = await asyncio.gather(*(store.put(did, "push", body) for did, body in bodies.items()))
    assert all(results)
    assert store.commits - commits < len(bodies)  # group commit: fewer transactions than puts
    for did, body in bodies.items():
        got = await store.get(did)
        assert got is not None and got.payload == body


async def test_a_file_from_before_compression_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE deliveries (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
        "event TEXT NOT NULL, action TEXT, payload BLOB NOT NULL, installation_id INTEGER, "
        "ordering_key TEXT, status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, "
        "received_at REAL NOT NULL, next_attempt_at REAL, lease_owner TEXT, lease_until REAL, "
        "last_error TEXT, updated_at REAL NOT NULL);"
        "INSERT INTO deliveries (id, event, payload, received_at, updated_at) "
        "VALUES ('old', 'push', CAST('{\"ref\": \"main\"}' AS BLOB), 1, 1);"
    )
    old.commit()
    old.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        got = await store.get("old")
        assert got is not None and got.payload == b'{"ref": "main"}'
        assert await store.put("new", "push", b'{"ref": "main"}' * 100)
        got = await store.get("new")
        assert got is not None and got.payload == b'{"ref": "main"}' * 100
    finally:
        await store.close()


def test_an_unknown_codec_is_refused() -> None:
    from bot.queue.sqlite import decode_payload

    with pytest.raises(ValueError, match="unknown payload codec 'lz77'"):
        decode_payload(b"x", "lz77")


async def test_the_file_is_in_wal_mode_with_full_sync(store: SQLiteStore) -> None:
    assert await store._run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert await store._run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 2  # FULL


async def test_concurrent_puts_are_group_committed(store: SQLiteStore) -> None:
    results = await asyncio.gather(*(store.put(f"d{i % 150}", "push", b"{}") for i in range(200)))
    assert sum(results) == 150  # 50 duplicates inside the same batches
    assert store.commits < 200
    counts = await store.counts()
    assert counts[Status.PENDING] == 150


async def test_a_batch_larger_than_one_insert_statement_keeps_every_answer(store: SQLiteStore) -> None:
    assert await store.put("old", "push", b"{}")
    ids = ["old", *(f"n{i}" for i in range(1200)), "n5"]  # spans three multi-row INSERTs
    results = await asyncio.gather(*(store.put(i, "push", b"{}") for i in ids))
    assert results[0] is False and results[-1] is False
    assert all(results[1:-1])
    assert (await store.counts())[Status.PENDING] == 1201


async def test_statements_queued_after_a_put_see_it(store: SQLiteStore) -> None:
    # Both go into the writer's queue before it runs: arrival order is kept inside one drain.
    stored, got = await asyncio.gather(store.put("q1", "push", b"{}"), store.get("q1"))
    assert stored is True
    assert got is not None and got.id == "q1"


async def test_wal_is_checkpointed_off_the_commit_path(store: SQLiteStore) -> None:
    store.checkpoint_bytes = 10_000
    # Random bytes do not compress: each put adds its full 4,000 bytes to the WAL.
    await asyncio.gather(*(store.put(f"c{i}", "push", os.urandom(4000)) for i in range(10)))
    for _ in range(200):  # the checkpoint thread runs on its own; wait for it
        if store.checkpoints:
            break
        await asyncio.sleep(0.01)
    assert store.checkpoints >= 1
    busy, wal_frames, copied = store.last_checkpoint
    assert busy == 0 and wal_frames > 0 and copied > 0  # frames went from the WAL into the file
    assert await store.put("after", "push", b"{}")  # commits go on after a checkpoint
    assert (await store.counts())[Status.PENDING] == 11


async def test_claim_leases_and_orders_by_key(store: SQLiteStore) -> None:
    await store.put("1", "pull_request", b"{}", ordering_key="o/r#1")
    await store.put("2", "pull_request", b"{}", ordering_key="o/r#1")
    await store.put("3", "pull_request", b"{}", ordering_key="o/r#2")
    await store.put("4", "push", b"{}")
    claimed = await store.claim("w1", limit=10)
    assert [d.id for d in claimed] == ["1", "3", "4"]
    assert all(d.status is Status.PROCESSING and d.attempts == 1 for d in claimed)
    assert await store.claim("w2", limit=10) == []  # "2" waits for "1"
    await store.complete("1", "w1")
    assert [d.id for d in await store.claim("w2", limit=10)] == ["2"]


async def test_a_failed_delivery_blocks_its_key_until_dead(store: SQLiteStore) -> None:
    await store.put("1", "pull_request", b"{}", ordering_key="k")
    await store.put("2", "pull_request", b"{}", ordering_key="k")
    (first,) = await store.claim("w", limit=5)
    assert first.id == "1"
    await store.fail("1", "w", "boom", datetime.now(UTC) + timedelta(hours=1))
    assert await store.claim("w", limit=5) == []
    d = await store.get("1")
    assert d is not None and d.status is Status.FAILED and d.last_error == "boom"
    # Due now: it is claimable again, still ahead of "2".
    await store._run(lambda c: c.execute("UPDATE deliveries SET next_attempt_at = 0 WHERE id = '1'"))
    (again,) = await store.claim("w", limit=5)
    assert again.id == "1" and again.attempts == 2
    await store.fail("1", "w", "boom again", None)
    assert (await store.get("1")).status is Status.DEAD  # type: ignore[union-attr]
    assert [d.id for d in await store.claim("w", limit=5)] == ["2"]


async def test_an_expired_lease_is_claimable_again(store: SQLiteStore) -> None:
    await store.put("1", "push", b"{}")
    (d,) = await store.claim("dead-worker", limit=1, lease_seconds=0.0)
    assert d.id == "1"
    (again,) = await store.claim("w2", limit=1)
    assert again.id == "1" and again.attempts == 2
    # The first worker lost its lease: its completion is ignored.
    await store.complete("1", "dead-worker")
    assert (await store.get("1")).status is Status.PROCESSING  # type: ignore[union-attr]
    await store.complete("1", "w2")
    assert (await store.get("1")).status is Status.DONE  # type: ignore[union-attr]


async def test_retry_and_retry_dead(store: SQLiteStore) -> None:
    for i in range(3):
        await store.put(str(i), "push", b"{}")
    for d in await store.claim("w", limit=3):
        await store.fail(d.id, "w", "nope", None)
    assert (await store.counts())[Status.DEAD] == 3
    assert await store.retry("0")
    assert not await store.retry("0")  # already pending
    assert not await store.retry("missing")
    assert await store.retry_dead() == 2
    counts = await store.counts()
    assert counts[Status.PENDING] == 3 and counts[Status.DEAD] == 0
    assert all(d.attempts == 0 for d in await store.recent())


async def test_counts_recent_and_state(store: SQLiteStore) -> None:
    assert set((await store.counts()).keys()) == set(Status)
    await store.put("a", "push", b"{}")
    await store.put("b", "status", b"{}")
    assert [d.id for d in await store.recent(limit=1)] in (["a"], ["b"])
    assert [d.id for d in await store.recent(status=Status.PENDING)] == ["b", "a"]
    assert await store.get_state("k") is None
    await store.set_state("k", "v1")
    await store.set_state("k", "v2")
    assert await store.get_state("k") == "v2"
    assert await store.ping()


async def test_two_processes_share_one_file(db_path: Path) -> None:
    a, b = SQLiteStore(db_path), SQLiteStore(db_path)
    await a.open()
    await b.open()
    try:
        for i in range(20):
            await a.put(str(i), "push", b"{}")
        got_a, got_b = await asyncio.gather(b.claim("wb", limit=20), a.claim("wa", limit=20))
        ids = [d.id for d in got_a + got_b]
        assert sorted(ids, key=int) == [str(i) for i in range(20)]  # each claimed exactly once
    finally:
        await a.close()
        await b.close()


async def test_a_closed_store_refuses_and_pings_false(db_path: Path) -> None:
    s = SQLiteStore(db_path)
    assert not await s.ping()
    with pytest.raises(RuntimeError, match="not open"):
        await s.put("x", "push", b"{}")


async def test_open_fails_clearly_for_a_missing_directory(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "nope" / "x.db")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        await s.open()


def test_open_store_urls(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path}/a.db")
    assert isinstance(s, SQLiteStore) and s.path == tmp_path / "a.db"
    for bad in ("mysql://x", "sqlite:///", "redis://"):
        with pytest.raises(UnsupportedStoreURL):
            open_store(bad)


HOLD_LOCK = """
import fcntl, hashlib, os, sys
from bot.queue.sqlite import LOCK_SLOTS
path, key = sys.argv[1], sys.argv[2]
slot = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % LOCK_SLOTS
fd = os.open(path + "-locks", os.O_RDWR | os.O_CREAT, 0o600)
fcntl.lockf(fd, fcntl.LOCK_EX, 1, slot)
print("locked", flush=True)
sys.stdin.readline()
"""


async def test_the_advisory_lock_holds_across_processes(store: SQLiteStore, db_path: Path) -> None:
    import sys

    key = "gitops-bot:check-runs:o/r@abc"
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_LOCK, str(db_path), key,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert other.stdout is not None and other.stdin is not None
    assert await asyncio.wait_for(other.stdout.readline(), 30) == b"locked\n"
    order: list[str] = []

    async def take() -> None:
        async with store.advisory_lock(key):
            order.append("here")

    waiting = asyncio.create_task(take())
    async with store.advisory_lock("gitops-bot:check-runs:o/r@another-sha"):  # other keys are free
        order.append("other key")
    await asyncio.sleep(0.3)
    assert order == ["other key"] and not waiting.done()  # the other process holds the key
    other.stdin.write(b"go\n")
    await other.stdin.drain()
    await asyncio.wait_for(waiting, 30)
    assert order == ["other key", "here"]
    await other.wait()


async def test_the_advisory_lock_counts_holders_in_one_process(store: SQLiteStore) -> None:
    async with store.advisory_lock("k"), store.advisory_lock("k"):
        assert list(store._lock_holders.values()) == [2]
    assert store._lock_holders == {}


async def test_a_cancelled_put_leaves_the_other_puts_of_its_batch_alone(store: SQLiteStore) -> None:
    """A caller that gives up (a client that hung up) cancels only its own wait."""
    puts = [asyncio.ensure_future(store.put(f"c-{i}", "push", b'{"n": %d}' % i)) for i in range(20)]
    await asyncio.sleep(0)  # all queued for the writer
    puts[3].cancel()
    results = await asyncio.gather(*puts, return_exceptions=True)
    assert isinstance(results[3], asyncio.CancelledError)
    assert all(r is True for i, r in enumerate(results) if i != 3)
    # The cancelled delivery was committed with the others: a redelivery is a duplicate.
    assert not await store.put("c-3", "push", b'{"n": 3}')
    assert {d.id for d in await store.recent(limit=50)} == {f"c-{i}" for i in range(20)}
