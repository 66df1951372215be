"""Fleet facts kept in the delivery store's state, so every replica serves the same page.

Keys: ``fleet:index`` (the repository/branch pairs known), ``fleet:branch:<repo>:<branch>``
(the clusters and environment facts of one branch), ``fleet:merged:<repo>`` (merged pull
requests of the governance window) and ``fleet:session:<digest>`` (dashboard sessions).
Writes replace one key each, so a push recomputes one branch and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.fleet import ClusterFacts, EnvFacts, FleetFacts, MergedPR, facts_from_json
from bot.domain.fleet.model import GOVERNANCE_DAYS
from bot.queue.base import DeliveryStore
from bot.service.records import held_in

INDEX = "fleet:index"


def _branch_key(repo: str, branch: str) -> str:
    return f"fleet:branch:{repo}:{branch}"


async def _json(store: DeliveryStore, key: str, default: Any) -> Any:
    raw = await store.get_state(key)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default


async def save_branch(store: DeliveryStore, clusters: list[ClusterFacts], env: EnvFacts) -> None:
    """Store the facts of one environment branch (keeping health and promotion facts already known)."""
    old = await load_env(store, env.repo, env.branch)
    if old is not None and old.head == env.head:
        env = replace(env, health=old.health, health_detail=old.health_detail)
    if old is not None:
        env = replace(
            env,
            last_promotion=env.last_promotion or old.last_promotion,
            open_promotions=env.open_promotions or old.open_promotions,
        )
    body = {"clusters": [asdict(c) for c in clusters], "env": asdict(env)}
    await store.set_state(_branch_key(env.repo, env.branch), json.dumps(body))
    index = await _json(store, INDEX, [])
    pair = [env.repo, env.branch]
    if pair not in index:
        index.append(pair)
        await store.set_state(INDEX, json.dumps(sorted(index)))


async def load_env(store: DeliveryStore, repo: str, branch: str) -> EnvFacts | None:
    data = await _json(store, _branch_key(repo, branch), None)
    if not data:
        return None
    return facts_from_json({"envs": [data["env"]]}).envs[0]


async def update_env(store: DeliveryStore, repo: str, branch: str, **changes: Any) -> bool:
    """Change fields of a stored environment; return False when the branch is not known yet."""
    key = _branch_key(repo, branch)
    data = await _json(store, key, None)
    if not data:
        return False
    data["env"].update(changes)
    await store.set_state(key, json.dumps(data))
    return True


async def record_merged(store: DeliveryStore, pr: MergedPR, now: datetime | None = None) -> None:
    """Add one merged pull request (idempotent by number); drop those older than the window."""
    key = f"fleet:merged:{pr.repo}"
    items = [m for m in await _json(store, key, []) if m.get("number") != pr.number]
    items.append(asdict(pr))
    since = ((now or datetime.now(UTC)) - timedelta(days=GOVERNANCE_DAYS + 1)).isoformat()
    items = [m for m in items if str(m.get("merged_at", "")).replace("Z", "+00:00") >= since]
    await store.set_state(key, json.dumps(items))


async def _holds(store: DeliveryStore, env: EnvFacts) -> tuple[dict[str, Any], ...]:
    """The open promotion PRs into ``env`` that the bot holds (its own hold records, read now)."""
    held: list[dict[str, Any]] = []
    for p in env.open_promotions:
        if isinstance(p.get("number"), int) and await held_in(store, env.repo, p["number"]):
            held.append({"number": p["number"], "title": p.get("title") or ""})
    return tuple(held)


async def load_facts(store: DeliveryStore) -> FleetFacts:
    """Return every stored fact (all repositories); holds are read from the bot's hold records."""
    facts = FleetFacts()
    repos: set[str] = set()
    for repo, branch in await _json(store, INDEX, []):
        data = await _json(store, _branch_key(repo, branch), None)
        if not data:
            continue
        one = facts_from_json({"clusters": data["clusters"], "envs": [data["env"]]})
        facts.clusters.extend(one.clusters)
        facts.envs.extend([replace(e, holds=await _holds(store, e)) for e in one.envs])
        repos.add(repo)
    for repo in sorted(repos):
        facts.merged.extend(
            facts_from_json({"merged": await _json(store, f"fleet:merged:{repo}", [])}).merged
        )
    return facts


async def set_open_promotion(
    store: DeliveryStore, repo: str, branch: str, number: int, entry: dict[str, Any] | None
) -> bool:
    """Add (``entry``) or remove (None) one open promotion PR of the environment on ``branch``."""
    env = await load_env(store, repo, branch)
    if env is None:
        return False
    kept = [p for p in env.open_promotions if p.get("number") != number]
    if entry is not None:
        kept.append(entry)
    return await update_env(store, repo, branch, open_promotions=sorted(kept, key=lambda p: p["number"]))


async def update_open_promotion(
    store: DeliveryStore, repo: str, branch: str, number: int, gates: str
) -> bool:
    """Set what the gates of an open promotion PR say (ignored when the PR is not known open)."""
    env = await load_env(store, repo, branch)
    if env is None or not any(p.get("number") == number for p in env.open_promotions):
        return False
    entries = [dict(p, gates=gates) if p.get("number") == number else p for p in env.open_promotions]
    return await update_env(store, repo, branch, open_promotions=entries)
