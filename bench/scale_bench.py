"""Scale-out benchmark: one `serve` replica on SQLite against two `serve` replicas on PostgreSQL.

Every replica is a real ``python -m bot serve --worker off`` process. The load generator sends
``--deliveries`` signed ``pull_request.opened`` deliveries (the octokit example, ~25 KB), at most
``--concurrency`` in flight, round-robin over the replicas as a load balancer would, after a
warm-up. It reports throughput and acknowledgement latency (client-side round trip, p50/p99),
checks every delivery got 202, and checks the store holds exactly the deliveries sent (none
lost, none twice). Both set-ups run in the same invocation on the same machine. PostgreSQL runs
with fsync on (SQLite runs with synchronous=FULL), so both acknowledge only durable writes.

Run: ``python bench/scale_bench.py [--deliveries 2000] [--concurrency 100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.queue.base import DeliveryStore  # noqa: E402
from tests.hostile.serve_process import ServeProcess  # noqa: E402
from tests.pg import PgUnavailable, start_postgres  # noqa: E402

SECRET = b"scale-bench-secret"
PAYLOAD_FILE = (
    ROOT / "tests" / "fixtures" / "hostile" / "webhooks" / "examples" / "pull_request" / "opened.payload.json"
)


def sign(body: bytes) -> str:
    import hashlib
    import hmac

    return "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()


@contextlib.contextmanager
def replicas(database_url: str, count: int, workdir: Path) -> Iterator[list[str]]:
    """Start ``count`` serve processes (worker off) on one store; yield their base URLs."""
    env = {"GITHUB_WEBHOOK_SECRET": SECRET.decode(), "DATABASE_URL": database_url}
    procs = [ServeProcess(f"serve{i}", env, workdir) for i in range(count)]

    async def start_all() -> None:
        async with aiohttp.ClientSession() as session:
            for p in procs:
                await p.start(session)

    try:
        asyncio.run(start_all())
        yield [p.url for p in procs]
    finally:
        for p in procs:
            p.stop()


@dataclass
class Result:
    name: str
    sent: int
    accepted: int
    errors: int
    seconds: float
    latencies: list[float]
    stored: int

    @property
    def throughput(self) -> float:
        return self.sent / self.seconds

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))] * 1000


async def load(
    urls: list[str], n: int, concurrency: int, payload: dict[str, object]
) -> tuple[int, int, float, list[float]]:
    """Send ``n`` deliveries round-robin; return (accepted, errors, seconds, latencies)."""
    bodies = []
    for i in range(n):
        p = dict(payload)
        p["number"] = i % 500  # 500 pull requests, so ordering keys repeat as in real traffic
        body = json.dumps(p).encode()
        bodies.append((body, str(uuid.uuid4())))
    latencies: list[float] = []
    accepted = errors = 0
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            nonlocal accepted, errors
            body, delivery = bodies[i]
            headers = {
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": sign(body),
                "Content-Type": "application/json",
            }
            async with sem:
                started = time.perf_counter()
                try:
                    async with session.post(
                        f"{urls[i % len(urls)]}/webhook", data=body, headers=headers
                    ) as r:
                        await r.read()
                        ok = r.status == 202
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - started)
            if ok:
                accepted += 1
            else:
                errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        seconds = time.perf_counter() - started
    return accepted, errors, seconds, latencies


async def count_stored(store: DeliveryStore) -> int:
    await store.open()
    try:
        return sum((await store.counts()).values())
    finally:
        await store.close()


def run_case(name: str, urls: list[str], store: DeliveryStore, args: argparse.Namespace) -> Result:
    payload = json.loads(PAYLOAD_FILE.read_text())
    warm_acc, _, _, _ = asyncio.run(load(urls, args.warmup, min(args.concurrency, 20), payload))
    accepted, errors, seconds, latencies = asyncio.run(load(urls, args.deliveries, args.concurrency, payload))
    stored = asyncio.run(count_stored(store)) - warm_acc
    return Result(name, args.deliveries, accepted, errors, seconds, latencies, stored)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()

    from bot.queue.postgres import PostgresStore
    from bot.queue.sqlite import SQLiteStore

    work = Path(tempfile.mkdtemp(prefix="gitops-bot-scale-"))
    os.chmod(work, 0o755)
    results: list[Result] = []
    try:
        db = work / "sqlite" / "bench.db"
        db.parent.mkdir()
        with replicas(f"sqlite:///{db}", 1, work) as urls:
            results.append(run_case("1 replica, SQLite", urls, SQLiteStore(db), args))
        try:
            pg = start_postgres(work / "pg", fsync=True)
        except PgUnavailable as exc:
            print(f"PostgreSQL part skipped: {exc}")
        else:
            try:
                with replicas(pg.dsn, 2, work) as urls:
                    results.append(run_case("2 replicas, PostgreSQL", urls, PostgresStore(pg.dsn), args))
            finally:
                pg.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\n{args.deliveries} signed pull_request deliveries (~25 KB), {args.concurrency} in flight, "
        f"{os.cpu_count()} CPUs\n"
    )
    print("| set-up | deliveries/s | p50 ack ms | p99 ack ms | max ms | 202s | errors | stored |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.name} | {r.throughput:.0f} | {r.pct(0.5):.1f} | {r.pct(0.99):.1f} | "
            f"{max(r.latencies) * 1000:.1f} | {r.accepted} | {r.errors} | {r.stored} |"
        )
    bad = [r for r in results if r.errors or r.stored != r.accepted]
    for r in bad:
        print(f"! {r.name}: {r.errors} errors, {r.stored} stored for {r.accepted} acknowledged")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
