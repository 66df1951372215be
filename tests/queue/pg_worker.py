"""A worker process for the multi-process PostgreSQL test: claim, log the work in PG, complete.

Usage: ``python -m tests.queue.pg_worker DSN WORKER_ID``. Each handled delivery is logged in the
``work_log`` table with database timestamps (one clock for every process). Exits when the queue
has had nothing open for a moment.
"""

from __future__ import annotations

import asyncio
import random
import sys

import asyncpg

from bot.queue.base import Status
from bot.queue.postgres import PostgresStore


async def main(dsn: str, worker_id: str) -> int:
    store = PostgresStore(dsn, max_size=2)
    await store.open()
    log = await asyncpg.connect(dsn)
    idle = 0
    try:
        while idle < 20:
            batch = await store.claim(worker_id, limit=2, lease_seconds=60)
            if not batch:
                counts = await store.counts()
                idle = idle + 1 if counts[Status.PENDING] + counts[Status.PROCESSING] == 0 else 0
                await asyncio.sleep(0.01)
                continue
            idle = 0
            for d in batch:
                started = await log.fetchval("SELECT clock_timestamp()")
                await asyncio.sleep(random.uniform(0, 0.004))
                await log.execute(
                    "INSERT INTO work_log (delivery_id, ordering_key, worker, started, finished) "
                    "VALUES ($1, $2, $3, $4, clock_timestamp())",
                    d.id,
                    d.ordering_key,
                    worker_id,
                    started,
                )
                await store.complete(d.id, worker_id)
    finally:
        await log.close()
        await store.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
