"""Acknowledgement latency and throughput: the real webhook (signed, stored durably) vs a bare 202.

Three servers run at the same time, each in its own process (so the client does not share
their event loop), and get the same load: ROUNDS rounds of CONCURRENCY concurrent signed
``pull_request.opened`` deliveries (the octokit example payload, about 25 KB), the rounds
alternating between the servers so that all see the same machine (this 2-core VM's speed
drifts by tens of percent from one minute to the next). The durable server is ``create_app``
with SQLite (WAL, synchronous=FULL, group commit) and the worker off; the bare server is an
aiohttp handler that reads the body and answers 202; the verify server is the real webhook
handler with an in-memory put, so that durable/verify is the cost of storing and verify/bare
the cost of checking the signature, the headers and the JSON.

Three clients:

- ``wrk`` (when the ``wrk`` load generator is installed, e.g. ``apt-get install wrk``): a closed
  loop, each of CONCURRENCY keep-alive connections sending the next delivery as soon as its
  answer arrives, for SECONDS per segment, segments alternating between the servers. This is
  the steady state of "200 concurrent deliveries", and wrk, written in C, costs the servers'
  shared CPUs least (about 20 us per request here).
- ``raw``: rounds of CONCURRENCY deliveries sent at once, each round waiting for all answers,
  from a minimal Python sender of pre-serialised HTTP/1.1 requests. Every round drains the
  pipeline, so client and server overlap less than in a closed loop.
- ``aiohttp``: the same rounds with aiohttp's client (heavier; its cost shows in every figure).

Run: ``python bench/ack_latency.py [--rounds 10] [--concurrency 200] [--client all]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = b"bench-secret"
#: bare: reads the body, answers 202. verify: the real handler without storage. durable: the
#: real service (create_app, SQLite). Rounds go bare, verify, durable, then the reverse order.
KINDS = ("bare", "verify", "durable")
PAYLOAD = (
    ROOT / "tests" / "fixtures" / "github" / "webhooks" / "examples" / "pull_request" / "opened.payload.json"
)


def _serve(kind: str, db_dir: str, conn: Connection, loop: str) -> None:
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
        cpu = os.times()
        return web.json_response({"durations": data, "cpu": cpu.user + cpu.system})

    async def main() -> None:
        if kind == "bare":
            app = web.Application(client_max_size=26 * 1024 * 1024)

            async def bare(request: web.Request) -> web.Response:
                await request.read()
                return web.json_response({"status": "queued"}, status=202)

            app.router.add_post("/webhook", bare)
        elif kind == "verify":
            # The real webhook handler (signature, headers, JSON validation, metrics, answer)
            # with a put that keeps ids in memory: everything but durable storage.
            from bot.service.metrics import Metrics
            from bot.service.webhook import WebhookHandler

            class MemoryIds:
                def __init__(self) -> None:
                    self.ids: set[str] = set()

                async def put(self, delivery_id: str, *args: Any, **kwargs: Any) -> bool:
                    new = delivery_id not in self.ids
                    self.ids.add(delivery_id)
                    return new

            ids = MemoryIds()
            handler = WebhookHandler(SECRET, lambda: ids, metrics=Metrics())  # type: ignore[arg-type,return-value]
            app = web.Application(client_max_size=26 * 1024 * 1024)
            app.router.add_post("/webhook", handler.handle)
        else:
            from bot.service.app import create_app
            from bot.service.settings import Settings

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

    if loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def _requests(n: int, start: int, tag: str) -> list[tuple[bytes, dict[str, str]]]:
    from bot.service.webhook import sign

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


def _raw_request(port: int, body: bytes, headers: dict[str, str]) -> bytes:
    head = ["POST /webhook HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response with a Content-Length body; return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


class Sender:
    """Sends one round of concurrent deliveries to one server and times each answer."""

    def __init__(self, client: str, port: int, concurrency: int) -> None:
        self.client = client
        self.port = port
        self.concurrency = concurrency
        self._conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._http: Any = None

    async def open(self) -> None:
        import aiohttp

        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.concurrency))
        if self.client == "raw":
            for _ in range(self.concurrency):
                self._conns.append(await asyncio.open_connection("127.0.0.1", self.port))

    async def close(self) -> None:
        for _, writer in self._conns:
            writer.close()
        await self._http.close()

    def prepare(self, batch: list[tuple[bytes, dict[str, str]]]) -> list[Any]:
        """Serialise a batch before the clock starts (the raw client only)."""
        if self.client == "raw":
            return [_raw_request(self.port, body, headers) for body, headers in batch]
        return batch

    async def round(self, prepared: list[Any]) -> list[float]:
        if self.client == "raw":
            return await asyncio.gather(
                *(self._raw(c, d) for c, d in zip(self._conns, prepared, strict=True))
            )
        return await asyncio.gather(*(self._aiohttp(body, headers) for body, headers in prepared))

    async def _raw(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], data: bytes) -> float:
        reader, writer = conn
        started = time.perf_counter()
        writer.write(data)
        status = await _read_response(reader)
        assert status == 202, status
        return time.perf_counter() - started

    async def _aiohttp(self, body: bytes, headers: dict[str, str]) -> float:
        started = time.perf_counter()
        async with self._http.post(
            f"http://127.0.0.1:{self.port}/webhook", data=body, headers=headers
        ) as resp:
            await resp.read()
            assert resp.status == 202, resp.status
        return time.perf_counter() - started

    async def server_side(self) -> tuple[list[float], float]:
        """The server's handler durations since the last call, and its CPU seconds so far."""
        async with self._http.get(f"http://127.0.0.1:{self.port}/bench-stats") as resp:
            data = await resp.json()
        return data["durations"], data["cpu"]


async def _alternate(
    ports: dict[str, int], client: str, rounds: int, concurrency: int
) -> dict[str, dict[str, Any]]:
    senders = {kind: Sender(client, port, concurrency) for kind, port in ports.items()}
    latencies: dict[str, list[float]] = {kind: [] for kind in ports}
    walls: dict[str, list[float]] = {kind: [] for kind in ports}
    try:
        for sender in senders.values():
            await sender.open()
        cpu_before: dict[str, float] = {}
        for kind, sender in senders.items():  # warm-up round (connections, caches), not measured
            await sender.round(sender.prepare(_requests(concurrency, -concurrency, f"{client}-{kind}")))
            _, cpu_before[kind] = await sender.server_side()
        for r in range(rounds):
            order = list(senders.items()) if r % 2 == 0 else list(senders.items())[::-1]
            for kind, sender in order:
                prepared = sender.prepare(_requests(concurrency, r * concurrency, f"{client}-{kind}"))
                started = time.perf_counter()
                latencies[kind] += await sender.round(prepared)
                walls[kind].append(time.perf_counter() - started)
        results = {}
        for kind, sender in senders.items():
            durations, cpu_after = await sender.server_side()
            server = sorted(durations)
            lat = sorted(latencies[kind])
            results[kind] = {
                "requests": len(lat),
                "p50_ms": statistics.median(lat) * 1000,
                "p99_ms": _p99(lat) * 1000,
                "max_ms": lat[-1] * 1000,
                "server_p50_ms": statistics.median(server) * 1000,
                "server_p99_ms": _p99(server) * 1000,
                "throughput_rps": len(lat) / sum(walls[kind]),
                "median_round_rps": concurrency / statistics.median(walls[kind]),
                "server_cpu_us": (cpu_after - cpu_before[kind]) / len(lat) * 1e6,
                "rounds_ms": [round(w * 1000) for w in walls[kind]],
            }
        return results
    finally:
        for sender in senders.values():
            await sender.close()


#: wrk script: one signed body for every request (the signature covers only the body), a new
#: X-GitHub-Delivery id per request so that every delivery is stored, and a JSON summary.
WRK_SCRIPT = r"""
local counter = 0
local tag = "wrk"
local f = assert(io.open(os.getenv("ACK_BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = "pull_request"
wrk.headers["X-Hub-Signature-256"] = os.getenv("ACK_BENCH_SIGNATURE")
function init(args)
  tag = args[1]
end
function request()
  counter = counter + 1
  wrk.headers["X-GitHub-Delivery"] = tag .. "-" .. counter
  return wrk.format(nil, "/webhook")
end
function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "seconds": %f, "p50_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"not_2xx": %d, "errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99), latency.max,
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


async def _alternate_wrk(
    ports: dict[str, int], rounds: int, concurrency: int, seconds: float
) -> dict[str, dict[str, Any]]:
    """Closed-loop segments of ``seconds`` per server, alternating, driven by wrk."""
    ((body, headers),) = _requests(1, 0, "wrk")  # wrk sends this body, with new delivery ids
    senders = {kind: Sender("aiohttp", port, concurrency) for kind, port in ports.items()}
    segments: dict[str, list[dict[str, Any]]] = {kind: [] for kind in ports}
    cpu: dict[str, float] = {kind: 0.0 for kind in ports}
    with tempfile.TemporaryDirectory() as tmp:
        script, body_file = Path(tmp) / "post.lua", Path(tmp) / "body.json"
        script.write_text(WRK_SCRIPT)
        body_file.write_bytes(body)
        env = dict(
            os.environ, ACK_BENCH_BODY=str(body_file), ACK_BENCH_SIGNATURE=headers["X-Hub-Signature-256"]
        )
        try:
            for sender in senders.values():
                await sender.open()
            for r in range(rounds + 1):  # round 0 warms up (connections, caches), not counted
                order = list(ports) if r % 2 == 0 else list(ports)[::-1]
                for kind in order:
                    sender = senders[kind]
                    _, cpu_before = await sender.server_side()
                    command = [
                        "wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "-s", str(script),
                        f"http://127.0.0.1:{ports[kind]}/webhook", "--", f"wrk-{kind}-{r}",
                    ]  # fmt: skip
                    out = await asyncio.to_thread(
                        subprocess.run, command, env=env, capture_output=True, text=True, check=True
                    )
                    durations, cpu_after = await sender.server_side()
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    if result["not_2xx"] or result["errors"]:
                        raise RuntimeError(
                            f"{kind}: {result['not_2xx']} answers not 2xx, {result['errors']} errors"
                        )
                    if r == 0:
                        continue
                    result["durations"] = durations
                    segments[kind].append(result)
                    cpu[kind] += cpu_after - cpu_before
        finally:
            for sender in senders.values():
                await sender.close()
    results = {}
    for kind, segs in segments.items():
        requests = sum(seg["requests"] for seg in segs)
        server = sorted(d for seg in segs for d in seg["durations"])
        results[kind] = {
            "requests": requests,
            # wrk gives percentiles per segment: the median segment's, and the worst one's max
            "p50_ms": statistics.median(seg["p50_us"] for seg in segs) / 1000,
            "p99_ms": statistics.median(seg["p99_us"] for seg in segs) / 1000,
            "max_ms": max(seg["max_us"] for seg in segs) / 1000,
            "server_p50_ms": statistics.median(server) * 1000,
            "server_p99_ms": _p99(server) * 1000,
            "throughput_rps": requests / sum(seg["seconds"] for seg in segs),
            "median_round_rps": statistics.median(seg["requests"] / seg["seconds"] for seg in segs),
            "server_cpu_us": cpu[kind] / requests * 1e6,
            "segments_p99_ms": [round(seg["p99_us"] / 1000, 1) for seg in segs],
            "segments_rps": [round(seg["requests"] / seg["seconds"]) for seg in segs],
        }
    return results


def measure(
    client: str, rounds: int, concurrency: int, loop: str, seconds: float = 3.0
) -> dict[str, dict[str, Any]]:
    """Start the servers, alternate the load between them, stop them; figures per server."""
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        procs = {}
        ports = {}
        for kind in KINDS:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(kind, tmp, child, loop))
            proc.start()
            procs[kind] = (proc, parent)
            ports[kind] = parent.recv()
        try:
            if client == "wrk":
                return asyncio.run(_alternate_wrk(ports, rounds, concurrency, seconds))
            return asyncio.run(_alternate(ports, client, rounds, concurrency))
        finally:
            for proc, parent in procs.values():
                parent.send("stop")
                proc.join(30)


def _p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument(
        "--client",
        choices=("wrk", "raw", "aiohttp", "all"),
        default="all",
        help="all: wrk (when installed), then raw, then aiohttp",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="length of a wrk segment")
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the servers' event loop"
    )
    parser.add_argument("--rounds-detail", action="store_true", help="print each round's duration")
    args = parser.parse_args()
    size = PAYLOAD.stat().st_size
    print(f"ack latency: {args.concurrency} concurrent signed deliveries ({size} B payload), "
          f"{os.cpu_count()} CPUs, servers alternating; wrk: {args.rounds} segments of {args.seconds:g} s "
          f"per server (closed loop); raw, aiohttp: {args.rounds} rounds per server")  # fmt: skip
    print("client: time from sending a request to reading its answer (includes queueing behind the")
    print(f"other {args.concurrency - 1} in flight); server: time inside the web handler (verify, parse,")
    print("durable commit); cpu us: the server process's CPU time per delivery (all its threads).")
    print("Client and servers share this machine's CPUs.")
    clients: tuple[str, ...] = (args.client,)
    if args.client == "all":
        clients = ("wrk", "raw", "aiohttp") if shutil.which("wrk") else ("raw", "aiohttp")
        if not shutil.which("wrk"):
            print("wrk is not installed (apt-get install wrk): closed-loop figures skipped")
    elif args.client == "wrk" and not shutil.which("wrk"):
        parser.error("--client wrk needs the wrk load generator on PATH (apt-get install wrk)")
    head = ("client", "server", "p50 ms", "p99 ms", "max ms", "srv p50", "srv p99", "req/s", "cpu us")
    print(f"{head[0]:<9}{head[1]:<9}" + "".join(f"{h:>9}" for h in head[2:]))
    for client in clients:
        results = measure(client, args.rounds, args.concurrency, args.loop, args.seconds)
        for kind, r in results.items():
            cols = (r["p50_ms"], r["p99_ms"], r["max_ms"], r["server_p50_ms"], r["server_p99_ms"])
            print(
                f"{client:<9}{kind:<9}" + "".join(f"{c:>9.1f}" for c in cols) + f"{r['throughput_rps']:>9.0f}"
                f"{r['server_cpu_us']:>9.0f}"
            )
        if args.rounds_detail:
            for kind, r in results.items():
                if client == "wrk":
                    print(f"{client:<9}{kind:<9}segments req/s: {' '.join(map(str, r['segments_rps']))}; "
                          f"p99 ms: {' '.join(map(str, r['segments_p99_ms']))}")  # fmt: skip
                else:
                    print(f"{client:<9}{kind:<9}rounds (ms): {' '.join(str(ms) for ms in r['rounds_ms'])}")
        rps = {kind: r["throughput_rps"] for kind, r in results.items()}
        print(
            f"{client:<9}throughput durable/bare {rps['durable'] / rps['bare']:.2f} (aim >= 0.50), "
            f"durable/verify {rps['durable'] / rps['verify']:.2f} (the cost of storing), "
            f"verify/bare {rps['verify'] / rps['bare']:.2f}; durable p99 aim < 50 ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
