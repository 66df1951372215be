"""Health from commit statuses and check runs (what Flux/Argo CD notifications post).

Pure: takes the JSON GitHub returns for ``GET /repos/{repo}/commits/{sha}/status`` (its
``statuses``) and ``GET /repos/{repo}/commits/{sha}/check-runs`` (its ``check_runs``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.domain.promotion.gates import GateState, HealthCheck

_STATUS = {
    "success": GateState.PASS,
    "failure": GateState.FAIL,
    "error": GateState.FAIL,
    "pending": GateState.PENDING,
}
_CONCLUSION = {
    "success": GateState.PASS,
    "neutral": GateState.PASS,
    "skipped": GateState.PASS,
    "failure": GateState.FAIL,
    "timed_out": GateState.FAIL,
    "cancelled": GateState.FAIL,
    "action_required": GateState.FAIL,
    "startup_failure": GateState.FAIL,
    "stale": GateState.PENDING,
}


NO_STATUS = "no status yet"


def parse_time(value: Any) -> datetime | None:
    """Parse GitHub's / Kubernetes' ``2026-11-18T10:00:00Z``; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def health_from_github(
    contexts: Sequence[str],
    statuses: Iterable[Mapping[str, Any]],
    check_runs: Iterable[Mapping[str, Any]],
) -> list[HealthCheck]:
    """One :class:`HealthCheck` per configured context, from the newest status or check run.

    A context with neither is pending ("no status yet"). When a context has both a status and
    a check run, the newer one wins. Statuses are newest first as GitHub returns them, but
    this does not rely on it.
    """
    latest: dict[str, tuple[datetime | None, HealthCheck]] = {}

    def offer(name: str, when: datetime | None, check: HealthCheck) -> None:
        have = latest.get(name)
        if have is None or (when is not None and (have[0] is None or when > have[0])):
            latest[name] = (when, check)

    wanted = set(contexts)
    for s in statuses:
        name = str(s.get("context", ""))
        if name not in wanted:
            continue
        state = _STATUS.get(str(s.get("state")), GateState.PENDING)
        when = parse_time(s.get("updated_at") or s.get("created_at"))
        detail = str(s.get("description") or s.get("state") or "")
        offer(
            name, when, HealthCheck("status", name, state, detail, when if state is GateState.PASS else None)
        )
    for r in check_runs:
        name = str(r.get("name", ""))
        if name not in wanted:
            continue
        if r.get("status") != "completed":
            state, detail = GateState.PENDING, str(r.get("status") or "queued")
        else:
            conclusion = str(r.get("conclusion"))
            state, detail = _CONCLUSION.get(conclusion, GateState.PENDING), conclusion
        when = parse_time(r.get("completed_at") or r.get("started_at"))
        offer(
            name,
            when,
            HealthCheck("check_run", name, state, detail, when if state is GateState.PASS else None),
        )
    out = []
    for name in contexts:
        if name in latest:
            out.append(latest[name][1])
        else:
            out.append(HealthCheck("status", name, GateState.PENDING, NO_STATUS))
    return out
