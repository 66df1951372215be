"""Print how fast the simulator answers: REST reads, a PR opened, a push with webhooks, a merge.

Run: ``/work/venv/bin/python bench/sim_throughput.py``. Figures only; nothing is asserted.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from bot.sim import Driver, Simulator


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with Simulator(Path(tmp) / "sim") as sim:
            d = Driver(sim, Path(tmp))
            d.user("alice")
            d.user("bob")
            d.org("acme", members=["alice", "bob"])
            d.repo("acme/fleet", collaborators={"alice": "write", "bob": "write"})
            d.install("acme")
            files = {f"clusters/c{i}/cluster.yaml": f"name: c{i}\nversion: '1.30'\n" for i in range(200)}
            t = time.perf_counter()
            await d.push("alice", "acme/fleet", "main", files, message="200 clusters")
            print(f"push of 200 files with webhooks: {time.perf_counter() - t:.3f} s")
            t = time.perf_counter()
            await d.push("alice", "acme/fleet", "change", {"clusters/c1/cluster.yaml": "name: c1\n"})
            n = await d.open_pr("alice", "acme/fleet", "change")
            print(f"push + open PR (webhooks delivered): {time.perf_counter() - t:.3f} s")
            token = d.people["alice"].token
            async with aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as s:
                for path in (
                    "/repos/acme/fleet",
                    f"/repos/acme/fleet/pulls/{n}",
                    f"/repos/acme/fleet/pulls/{n}/files",
                ):
                    count = 200
                    t = time.perf_counter()
                    for _ in range(count):
                        async with s.get(sim.base_url + path) as r:
                            await r.read()
                    dt = time.perf_counter() - t
                    print(f"GET {path}: {count / dt:.0f} req/s ({dt / count * 1000:.1f} ms each)")
            t = time.perf_counter()
            await d.merge("bob", "acme/fleet", n, "squash")
            print(f"squash merge (webhooks delivered): {time.perf_counter() - t:.3f} s")
            print("requests by route:", dict(sim.requests.counts().most_common(4)))
            await d.close()


if __name__ == "__main__":
    asyncio.run(main())
