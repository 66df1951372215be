"""Gate evaluation for one promotion PR: facts in, a checklist out.

Gates for promoting a change from ``source`` to ``target``:

- **health**: ``source`` is healthy at the source commit (commit statuses / check runs with
  ``source.gates.contexts``, and/or Flux/Argo CD/Flagger objects read by ``bot.health``);
- **soak**: it has been healthy for ``source.gates.soak``;
- **approvals**: every rule in ``target.gates.approvals`` is satisfied;
- **freeze**: no freeze window of ``target`` covers now;
- **hold**: the promotion PR does not carry the hold label;
- **queue**: no earlier promotion into ``target`` is still in flight.

A gate is ``pass``, ``pending`` (will be re-checked: waiting for health, time or people) or
``fail`` (needs a human: red health, a broken freeze window). Red health is ``fail``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.domain import escape
from bot.domain.promotion.environments import Environment, EnvironmentConfigError
from bot.domain.promotion.freeze import active_freeze


class GateState(enum.StrEnum):
    """Outcome of one gate."""

    PASS = "pass"
    PENDING = "pending"
    FAIL = "fail"

    @property
    def icon(self) -> str:
        return {"pass": "✅", "pending": "⏳", "fail": "❌"}[self.value]


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One health signal of an environment at a commit.

    ``source`` is ``status``, ``check_run``, ``kustomization``, ``application`` or ``canary``;
    ``since`` is when it turned healthy (None when unknown or not healthy).
    """

    source: str
    name: str
    state: GateState
    detail: str = ""
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApprovalResult:
    """Whether one approval rule is satisfied, and what it still wants."""

    rule: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class GateFacts:
    """Everything the gates need, gathered by the handler.

    ``health`` covers the contexts and Kubernetes objects configured for the source env;
    ``merged_at`` is when the change reached the source env (soak starts there when no
    health signal is configured). ``ahead`` lists the promotion PRs into the same target that
    are in flight before this one.
    """

    now: datetime
    health: tuple[HealthCheck, ...] = ()
    merged_at: datetime | None = None
    approvals: tuple[ApprovalResult, ...] = ()
    held: bool = False
    hold_detail: str = ""
    ahead: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class GateResult:
    """One line of the checklist."""

    gate: str
    state: GateState
    detail: str


@dataclass(frozen=True, slots=True)
class GateReport:
    """All gates of one promotion PR; ``recheck_at`` is when a time gate may flip."""

    results: tuple[GateResult, ...]
    recheck_at: datetime | None = None
    healthy_since: datetime | None = field(default=None)

    @property
    def state(self) -> GateState:
        states = {r.state for r in self.results}
        if GateState.FAIL in states:
            return GateState.FAIL
        if GateState.PENDING in states:
            return GateState.PENDING
        return GateState.PASS

    @property
    def passed(self) -> bool:
        return self.state is GateState.PASS

    def get(self, gate: str) -> GateResult | None:
        return next((r for r in self.results if r.gate == gate), None)

    def summary_line(self) -> str:
        """One sentence for a check-run title or a comment."""
        if self.passed:
            return "All promotion gates hold."
        waiting = [r.gate for r in self.results if r.state is not GateState.PASS]
        verb = "failed" if self.state is GateState.FAIL else "waiting"
        return f"Promotion gates {verb}: {', '.join(waiting)}."

    def checklist(self) -> str:
        """A markdown table: gate, state, detail."""
        lines = ["| | Gate | Detail |", "|---|---|---|"]
        for r in self.results:
            lines.append(f"| {r.state.icon} | **{r.gate}** | {_cell(r.detail)} |")
        return "\n".join(lines)

    def task_list(self) -> str:
        """A markdown task list (``- [x]``) for the PR body."""
        return "\n".join(
            f"- [{'x' if r.state is GateState.PASS else ' '}] **{r.gate}**: {_cell(r.detail)}"
            for r in self.results
        )


def _cell(text: str) -> str:
    """One line: details are markdown the bot wrote, foreign strings already escaped in them."""
    return " ".join(text.split())


def _check(c: HealthCheck) -> str:
    """A health check quoted in a detail: its name, and its description (a CI status's, a
    cluster object's message: anyone who can post a status writes it) through the escaper."""
    name = escape.code(c.name, table=True)
    return f"{name} ({escape.message(c.detail, table=True)})" if c.detail else name


def _fmt_delta(d: timedelta) -> str:
    secs = max(int(d.total_seconds()), 0)
    h, rem = divmod(secs, 3600)
    m = rem // 60
    if h >= 24:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h:
        return f"{h}h{m:02d}m" if m else f"{h}h"
    return f"{m}m" if m else f"{secs}s"


def _fmt_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M %Z").strip()


def health_result(source: Environment, checks: Sequence[HealthCheck]) -> tuple[GateResult, datetime | None]:
    """Fold the health checks of ``source`` into one gate; return it and when all turned healthy."""
    if not source.gates.needs_health:
        return GateResult("health", GateState.PASS, f"no health signal configured for `{source.name}`"), None
    if not checks:
        return GateResult("health", GateState.PENDING, f"no health signal from `{source.name}` yet"), None
    red = [c for c in checks if c.state is GateState.FAIL]
    waiting = [c for c in checks if c.state is GateState.PENDING]
    if red:
        names = ", ".join(_check(c) for c in red)
        return GateResult("health", GateState.FAIL, f"`{source.name}` is unhealthy: {names}"), None
    if waiting:
        names = ", ".join(_check(c) for c in waiting)
        return GateResult("health", GateState.PENDING, f"waiting for {names} in `{source.name}`"), None
    sinces = [c.since for c in checks if c.since is not None]
    since = max(sinces) if sinces else None
    names = ", ".join(_check(c) for c in checks)
    return GateResult("health", GateState.PASS, f"`{source.name}` healthy: {names}"), since


def evaluate_gates(
    source: Environment, target: Environment, facts: GateFacts, *, hold_label: str = "gitops-bot/hold"
) -> GateReport:
    """Evaluate every gate of a promotion from ``source`` into ``target``."""
    results: list[GateResult] = []
    recheck: list[datetime] = []

    health, since = health_result(source, facts.health)
    results.append(health)

    soak = source.gates.soak
    if soak > timedelta(0):
        # a signal that was already green before the change arrived says nothing about the change
        start = since if source.gates.needs_health else (since or facts.merged_at)
        if start is not None and facts.merged_at is not None and facts.merged_at > start:
            start = facts.merged_at
        if health.state is not GateState.PASS:
            results.append(GateResult("soak", GateState.PENDING, f"starts when `{source.name}` is healthy"))
        elif start is None:
            results.append(
                GateResult("soak", GateState.PENDING, "time of health unknown; waiting for a new signal")
            )
        else:
            elapsed = facts.now - start
            if elapsed >= soak:
                results.append(
                    GateResult(
                        "soak", GateState.PASS, f"healthy for {_fmt_delta(elapsed)} (soak {_fmt_delta(soak)})"
                    )
                )
            else:
                ready = start + soak
                recheck.append(ready)
                results.append(
                    GateResult(
                        "soak",
                        GateState.PENDING,
                        f"healthy for {_fmt_delta(elapsed)} of {_fmt_delta(soak)}; "
                        f"ready at {_fmt_time(ready)}",
                    )
                )

    if target.gates.approvals:
        by_rule: Mapping[str, ApprovalResult] = {a.rule: a for a in facts.approvals}
        missing = []
        for rule in target.gates.approvals:
            a = by_rule.get(rule)
            if a is None or not a.ok:
                missing.append(f"`{rule}`" + (f": {a.detail}" if a and a.detail else ""))
        if missing:
            results.append(GateResult("approvals", GateState.PENDING, "still needed: " + "; ".join(missing)))
        else:
            rules = "; ".join(
                f"`{r}`" + (f" ({by_rule[r].detail})" if by_rule[r].detail else "")
                for r in target.gates.approvals
            )
            results.append(GateResult("approvals", GateState.PASS, f"satisfied: {rules}"))

    if target.gates.freeze:
        try:
            freeze = active_freeze(target.gates.freeze, facts.now)
        except EnvironmentConfigError as exc:
            results.append(
                GateResult("freeze", GateState.FAIL, f"{exc}; fix `environments` in .github/gitops-bot.yml")
            )
        else:
            if freeze is None:
                results.append(GateResult("freeze", GateState.PASS, f"`{target.name}` is not frozen"))
            else:
                recheck.append(freeze.until)
                results.append(
                    GateResult(
                        "freeze",
                        GateState.PENDING,
                        f"`{target.name}` is frozen until {_fmt_time(freeze.until)}: "
                        f"{escape.text(freeze.reason)}",
                    )
                )

    if facts.held:
        why = f": {facts.hold_detail}" if facts.hold_detail else ""
        results.append(
            GateResult(
                "hold", GateState.PENDING, f"held with `{hold_label}`{why}; comment `/unhold` to release"
            )
        )
    else:
        results.append(GateResult("hold", GateState.PASS, "not held"))

    if facts.ahead:
        ahead = ", ".join(f"#{n}" for n in facts.ahead)
        results.append(
            GateResult("queue", GateState.PENDING, f"waiting for {ahead} to reach `{target.name}` first")
        )
    else:
        results.append(GateResult("queue", GateState.PASS, f"next in line for `{target.name}`"))

    return GateReport(tuple(results), min(recheck) if recheck else None, since)
