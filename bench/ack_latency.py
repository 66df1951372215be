"""Acknowledgement latency and throughput: the real webhook (signed, stored durably) vs a bare 202.

Both servers run in their own process (so the client does not share their event loop) and
get the same load: ROUNDS rounds of CONCURRENCY concurrent signed ``pull_request.opened``
deliveries (the octokit example payload, about 25 KB). The durable server is
``create_app`` with SQLite (WAL, synchronous=FULL, group commit) and the worker off; the bare
server is an aiohttp handler that reads the body and answers 202.

Run: ``python bench/ack_latency.py [--rounds 5] [--concurrency 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = b"bench-secret"
PAYLOAD = (
    ROOT / "tests" / "fixtures" / "github" / "webhooks" / "examples" / "pull_request" / "opened.payload.json"
)


def _serve(kind: str, db_dir: str, conn: Connection) -> None:
    from aiohttp import web

    durations: list[float] = []

    @web.middleware
    async def timing(request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.perf_counter()
        response: web.StreamResponse = await handler(request)
        if request.path == "/webhook":
            durations.append(time.perf_counter() - started)
        return response

    async def stats(request: web.Request) -> web.Response:
        data = list(durations)
        durations.clear()
        return web.json_response(data)

    async def main() -> None:
        if kind == "bare":
            app = web.Application(client_max_size=26 * 1024 * 1024)

            async def bare(request: web.Request) -> web.Response:
                await request.read()
                return web.json_response({"status": "queued"}, status=202)

            app.router.add_post("/webhook", bare)
        else:
            from bot.app import create_app
            from bot.settings import Settings

            settings = Settings(
                webhook_secret=SECRET, database_url=f"sqlite:///{db_dir}/bench.db", worker="off"
            )
            app = create_app(settings)
        app.middlewares.append(timing)
        app.router.add_get("/bench-stats", stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        conn.send(runner.addresses[0][1])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # wait for "stop"
        await runner.cleanup()

    asyncio.run(main())


def _requests(n: int, start: int, tag: str) -> list[tuple[bytes, dict[str, str]]]:
    from bot.webhook import sign

    base = json.loads(PAYLOAD.read_bytes())
    out = []
    for i in range(start, start + n):
        body = json.dumps(dict(base, number=i)).encode()
        headers = {
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": f"{tag}-{i}",
            "X-Hub-Signature-256": sign(SECRET, body),
            "Content-Type": "application/json",
        }
        out.append((body, headers))
    return out


async def _load(port: int, rounds: int, concurrency: int, tag: str) -> tuple[list[float], float, list[float]]:
    import aiohttp

    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(request: tuple[bytes, dict[str, str]]) -> float:
            body, headers = request
            started = time.perf_counter()
            async with http.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers) as resp:
                await resp.read()
                assert resp.status == 202, resp.status
            return time.perf_counter() - started

        # warm-up round (connections, caches), not measured
        await asyncio.gather(*(one(r) for r in _requests(concurrency, -concurrency, tag)))
        async with http.get(f"http://127.0.0.1:{port}/bench-stats") as resp:
            await resp.json()
        wall = 0.0
        for r in range(rounds):
            batch = _requests(concurrency, r * concurrency, tag)  # signed before the clock starts
            started = time.perf_counter()
            latencies += await asyncio.gather(*(one(req) for req in batch))
            wall += time.perf_counter() - started
        async with http.get(f"http://127.0.0.1:{port}/bench-stats") as resp:
            server_side: list[float] = await resp.json()
    return latencies, wall, server_side


def measure(kind: str, rounds: int, concurrency: int) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    with tempfile.TemporaryDirectory() as tmp:
        proc = ctx.Process(target=_serve, args=(kind, tmp, child))
        proc.start()
        port = parent.recv()
        try:
            latencies, wall, server_side = asyncio.run(_load(port, rounds, concurrency, kind))
        finally:
            parent.send("stop")
            proc.join(30)
    latencies.sort()
    server_side.sort()
    n = len(latencies)
    return {
        "requests": n,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": _p99(latencies) * 1000,
        "max_ms": latencies[-1] * 1000,
        "server_p50_ms": statistics.median(server_side) * 1000,
        "server_p99_ms": _p99(server_side) * 1000,
        "throughput_rps": n / wall,
    }


def _p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    print(f"ack latency: {args.rounds} rounds x {args.concurrency} concurrent signed deliveries "
          f"({PAYLOAD.stat().st_size} B payload), {os.cpu_count()} CPUs")  # fmt: skip
    results = {kind: measure(kind, args.rounds, args.concurrency) for kind in ("bare", "durable")}
    print("client: time from sending the request to reading the answer (includes queueing behind the")
    print("other 199 in flight); server: time inside the web handler (verify, parse, durable commit).")
    head = ("server", "p50 ms", "p99 ms", "max ms", "srv p50", "srv p99", "req/s")
    print(f"{head[0]:<10}" + "".join(f"{h:>10}" for h in head[1:]))
    for kind, r in results.items():
        cols = (r["p50_ms"], r["p99_ms"], r["max_ms"], r["server_p50_ms"], r["server_p99_ms"])
        print(f"{kind:<10}" + "".join(f"{c:>10.1f}" for c in cols) + f"{r['throughput_rps']:>10.0f}")
    ratio = results["durable"]["throughput_rps"] / results["bare"]["throughput_rps"]
    print(f"durable/bare throughput: {ratio:.2f} (aim >= 0.50); durable p99 aim < 50 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
