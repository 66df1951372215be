"""``gitops-bot deliveries``: counts by status, recent and dead deliveries; retry them."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bot.cli._service import StartupError, fail, open_store_or_error, settings_or_error
from bot.queue.base import Delivery, DeliveryStore, Status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--limit", type=int, default=20, help="how many recent and dead deliveries to list")
    sub = parser.add_subparsers(dest="deliveries_command", metavar="{retry}")
    retry = sub.add_parser("retry", help="put a failed or dead delivery (or every dead one) back to pending")
    retry.add_argument("id", nargs="?", help="the X-GitHub-Delivery id")
    retry.add_argument("--dead", action="store_true", help="retry every dead delivery")
    retry.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON"
    )


def delivery_json(d: Delivery) -> dict[str, Any]:
    """Return a delivery as JSON-ready data, without its payload."""
    return {
        "id": d.id,
        "event": d.event,
        "action": d.action,
        "status": d.status.value,
        "attempts": d.attempts,
        "ordering_key": d.ordering_key,
        "installation_id": d.installation_id,
        "received_at": d.received_at.isoformat(),
        "updated_at": d.updated_at.isoformat() if d.updated_at else None,
        "next_attempt_at": d.next_attempt_at.isoformat() if d.next_attempt_at else None,
        "last_error": d.last_error,
    }


def _table(rows: list[Delivery]) -> str:
    if not rows:
        return "  (none)"
    lines = []
    for d in rows:
        event = d.event + (f".{d.action}" if d.action else "")
        when = (d.updated_at or d.received_at).strftime("%Y-%m-%d %H:%M:%S")
        line = f"  {d.id:<38} {event:<34} {d.status.value:<10} tries={d.attempts:<3} {when}"
        if d.last_error and d.status in (Status.FAILED, Status.DEAD):
            line += f"\n      error: {d.last_error[:300]}"
        lines.append(line)
    return "\n".join(lines)


async def _with_store(url: str) -> DeliveryStore:
    if url.startswith("sqlite:///") and not await asyncio.to_thread(Path(url[len("sqlite:///") :]).exists):
        raise StartupError(f"no delivery store at {url}: set DATABASE_URL to the one the service uses")
    return await open_store_or_error(url)


async def show(url: str, *, as_json: bool, limit: int) -> int:
    """Print counts by status plus the recent and the dead deliveries."""
    store = await _with_store(url)
    try:
        counts = await store.counts()
        recent = await store.recent(limit=limit)
        dead = await store.recent(status=Status.DEAD, limit=limit)
    finally:
        await store.close()
    if as_json:
        data = {
            "counts": {s.value: counts.get(s, 0) for s in Status},
            "recent": [delivery_json(d) for d in recent],
            "dead": [delivery_json(d) for d in dead],
        }
        print(json.dumps(data, indent=2))
        return 0
    print("Deliveries by status:")
    for s in Status:
        print(f"  {s.value:<11}{counts.get(s, 0):>8}")
    print(f"\nRecent ({len(recent)}):")
    print(_table(recent))
    print(f"\nDead letters ({len(dead)}):")
    print(_table(dead))
    if dead:
        print("\nRetry them with: gitops-bot deliveries retry --dead (or retry ID)")
    return 0


async def retry(url: str, delivery_id: str | None, *, dead: bool, as_json: bool) -> int:
    """Put one delivery, or every dead one, back to pending."""
    store = await _with_store(url)
    try:
        if dead:
            n = await store.retry_dead()
            print(json.dumps({"retried": n}) if as_json else f"{n} dead deliveries put back to pending")
            return 0
        assert delivery_id is not None
        if await store.retry(delivery_id):
            print(
                json.dumps({"retried": 1, "id": delivery_id})
                if as_json
                else f"{delivery_id} put back to pending"
            )
            return 0
        current = await store.get(delivery_id)
    finally:
        await store.close()
    if current is None:
        print(f"gitops-bot: error: no delivery {delivery_id!r} is stored", file=sys.stderr)
    else:
        print(
            f"gitops-bot: error: delivery {delivery_id} is {current.status.value}; only failed or dead "
            "deliveries can be retried",
            file=sys.stderr,
        )
    return 1


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_or_error(webhook_secret=False)
        if args.deliveries_command == "retry":
            if bool(args.id) == bool(args.dead):
                return fail("give either a delivery ID or --dead")
            return asyncio.run(retry(settings.database_url, args.id, dead=args.dead, as_json=args.json))
        return asyncio.run(show(settings.database_url, as_json=args.json, limit=max(1, args.limit)))
    except StartupError as exc:
        return fail(str(exc))
