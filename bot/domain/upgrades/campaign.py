"""Upgrade campaigns as a state machine: state and facts in, the next state and actions out (pure).

A campaign walks the steps of an :class:`~bot.domain.upgrades.plan.UpgradePlan`. Each step but
the smoke test is a pull request on the cluster's environment branch, checked and gated like
any other; after it merges the campaign soaks while the clusters concerned stay healthy, then
opens the next step. A red cluster or a failed smoke signal during a traffic step rolls the
weights back to the last good ones and pauses the campaign; a hold pauses it too.

The state is the bot's own: it lives in the tracking issue's body, which only the bot writes,
and the handler reads it back only from the bot's own comment or body (never a person's). A
redelivered webhook asks :func:`decide` again with the same state and facts and gets the same
answer; the handler makes writes idempotent (an open PR for the step is found, not opened twice).

::

    pending --open PR--> merging --merged--> soaking --soak held, healthy--> pending (next step)
       |                    |                   |                                   \\-> done
       |                    \\--closed--> paused  \\--red or smoke failed--> rolling-back --merged--> paused
       \\-- smoke step: waiting for the green cluster's health and smoke signal -> next step
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from bot.domain import escape
from bot.domain.upgrades.plan import UpgradePlan
from bot.domain.upgrades.tables import merged_addon_table

Phase = Literal["pending", "merging", "soaking", "smoke", "rolling-back", "paused", "done"]
Health = Literal["green", "red", "pending"]
MARKER = "gitops-bot:upgrade-state"
_STATE = re.compile(r"<!-- " + re.escape(MARKER) + r" (\{.*?\}) -->", re.S)


@dataclass(frozen=True, slots=True)
class CampaignStep:
    kind: str
    title: str
    version: str = ""
    files: tuple[str, ...] = ()

    @property
    def weight(self) -> int | None:
        """The green cluster's traffic weight a traffic step sets."""
        return int(self.version) if self.kind == "traffic" and self.version.isdigit() else None


@dataclass(frozen=True, slots=True)
class Campaign:
    """Where one upgrade campaign stands. Serialised into the tracking issue by :func:`dump_state`."""

    cluster: str
    env: str
    strategy: str
    target: str
    steps: tuple[CampaignStep, ...]
    green: str = ""
    current: int = 0
    phase: Phase = "pending"
    pr: int | None = None
    head_sha: str = ""
    merged_at: str = ""
    good_weight: int = 0
    reason: str = ""
    rollback_pr: int | None = None
    done_steps: tuple[int, ...] = ()
    paused_on: str = ""  # the smoke signal a smoke step paused on (its id): only another one counts
    addons: tuple[tuple[str, str, str], ...] = ()  # (add-on, Kubernetes version, add-on version) planned

    def addon_versions(self, bundled: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
        """The add-on versions the steps set: the plan's (from AWS when it answered) over ``bundled``."""
        planned: dict[str, dict[str, str]] = {}
        for name, version, addon in self.addons:
            planned.setdefault(name, {})[version] = addon
        return merged_addon_table(bundled, planned)

    @property
    def step(self) -> CampaignStep | None:
        return self.steps[self.current] if 0 <= self.current < len(self.steps) else None

    @property
    def key(self) -> str:
        """One campaign per cluster and target."""
        return f"{self.cluster}@{self.target}"


@dataclass(frozen=True, slots=True)
class Facts:
    """What the handler gathered for one decision."""

    now: datetime
    soak: timedelta
    pr_state: Literal["open", "merged", "closed", "missing"] = "missing"
    pr_merged_at: datetime | None = None
    pr_by_bot: bool = True
    health: Mapping[str, Health] = field(default_factory=dict)
    smoke: Literal["success", "failure", "pending"] = "pending"
    smoke_id: str = ""  # which smoke signal that is (GitHub's ids of the status / check run)
    held: bool = False
    rollback_state: Literal["open", "merged", "closed", "missing"] = "missing"


@dataclass(frozen=True, slots=True)
class OpenStepPR:
    step: CampaignStep
    index: int


@dataclass(frozen=True, slots=True)
class OpenRollbackPR:
    weight: int
    reason: str


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class OpenRegistryPR:
    """A finished blue/green campaign: the default branch's ``clusters:`` registry names green
    instead of blue (the steps edited the environment branch's copy)."""


Action = OpenStepPR | OpenRollbackPR | OpenRegistryPR | Say


def _md(value: str) -> str:
    """A name or step title (from the repository) as literal markdown text.

    What the campaign says (and its ``reason``, shown in the tracking issue) is markdown; step
    titles stay raw in the state, since they are also pull request titles (plain text).
    """
    return escape.text(value)


def _names(names: list[str]) -> str:
    return ", ".join(_md(n) for n in names)


def start(plan: UpgradePlan) -> Campaign:
    """Return a new campaign for ``plan`` (migrations first, as the plan orders them)."""
    steps = tuple(
        CampaignStep(s.kind, s.title, s.version, s.files) for s in plan.steps if s.kind != "migrate-apis"
    )
    return Campaign(
        cluster=plan.cluster,
        env=plan.env,
        strategy=plan.strategy,
        target=f"{plan.to_version[0]}.{plan.to_version[1]}",
        steps=steps,
        green=plan.green,
        addons=tuple(
            (name, version, addon)
            for name, versions in sorted(plan.addon_table.items())
            for version, addon in sorted(versions.items())
        ),
    )


def watched(c: Campaign) -> tuple[str, ...]:
    """The clusters whose health gates the current step."""
    step = c.step
    if c.strategy != "blue-green" or step is None:
        return (c.cluster,)
    if step.kind in ("create-green", "smoke"):
        return (c.green,)
    if step.kind == "decommission-cluster":
        return (c.green,)
    return (c.cluster, c.green)


def _advance(c: Campaign, note: str) -> tuple[Campaign, list[Action]]:
    step = c.step
    good = step.weight if step is not None and step.weight is not None else c.good_weight
    done = (*c.done_steps, c.current)
    nxt = c.current + 1
    if nxt >= len(c.steps):
        final = replace(c, current=nxt, phase="done", pr=None, head_sha="", merged_at="", good_weight=good)
        said: list[Action] = [Say(f"{note} The upgrade of {_md(c.cluster)} is complete.")]
        return replace(final, done_steps=done), said + (
            [OpenRegistryPR()] if c.strategy == "blue-green" else []
        )
    following = replace(
        c,
        current=nxt,
        phase="pending",
        pr=None,
        head_sha="",
        merged_at="",
        good_weight=good,
        done_steps=done,
        paused_on="",
    )
    upcoming = following.steps[nxt]
    if upcoming.kind == "smoke":
        return replace(following, phase="smoke"), [Say(f"{note} Waiting for {_md(c.green)}'s smoke signal.")]
    return following, [Say(note), OpenStepPR(upcoming, nxt)]


def _red(c: Campaign, facts: Facts) -> list[str]:
    return [name for name in watched(c) if facts.health.get(name) == "red"]


def decide(c: Campaign, facts: Facts) -> tuple[Campaign, list[Action]]:
    """Return the campaign's next state and what to do now. Deterministic for the same inputs."""
    step = c.step
    if c.phase in ("done", "paused") or step is None:
        return c, []
    if c.phase == "pending":
        return c, [OpenStepPR(step, c.current)]
    if c.phase == "merging":
        if facts.pr_state == "merged":
            merged = (facts.pr_merged_at or facts.now).isoformat()
            return replace(c, phase="soaking", merged_at=merged), [
                Say(f"Step {c.current + 1} merged: {_md(step.title)}. Soaking.")
            ]
        if facts.pr_state == "closed":
            reason = f"the PR of step {c.current + 1} was closed without merging"
            return replace(c, phase="paused", reason=reason), [Say(f"Paused: {reason}. `/upgrade` resumes.")]
        if facts.pr_state == "missing" or not facts.pr_by_bot:
            return replace(c, phase="pending", pr=None, head_sha=""), [OpenStepPR(step, c.current)]
        return c, []
    if c.phase == "rolling-back":
        if facts.rollback_state in ("merged", "closed"):
            return replace(c, phase="paused"), [
                Say(
                    f"Paused after the rollback to {c.good_weight}% on {_md(c.green)}: {c.reason}. "
                    "`/upgrade` retries."
                )
            ]
        return c, []
    red = _red(c, facts)
    if c.phase == "smoke":
        if facts.smoke != "pending" and _stale(c, facts):  # the verdict the retry was asked past
            facts = replace(facts, smoke="pending")
        if facts.smoke == "failure" or red:
            reason = "the smoke signal failed" if facts.smoke == "failure" else f"{_names(red)} is red"
            on = facts.smoke_id if facts.smoke == "failure" else c.paused_on
            return replace(c, phase="paused", reason=reason, paused_on=on), [
                Say(f"Paused before any traffic moved: {reason}. `/upgrade` retries.")
            ]
        if facts.smoke == "success" and facts.health.get(c.green) == "green" and not facts.held:
            return _advance(c, f"{_md(c.green)} is healthy and passed its smoke tests.")
        return c, []
    # soaking
    if step.kind == "traffic" and facts.smoke == "failure":  # green's smoke tests, run again under traffic
        reason = f"{_md(c.green)}'s smoke signal failed during step {c.current + 1} ({_md(step.title)})"
        return replace(c, phase="rolling-back", reason=reason), [OpenRollbackPR(c.good_weight, reason)]
    if red:
        reason = f"{_names(red)} turned red during step {c.current + 1} ({_md(step.title)})"
        if step.kind == "traffic":
            return replace(c, phase="rolling-back", reason=reason), [OpenRollbackPR(c.good_weight, reason)]
        return replace(c, phase="paused", reason=reason), [Say(f"Paused: {reason}. `/upgrade` resumes.")]
    if facts.held:
        return c, []
    merged_at = datetime.fromisoformat(c.merged_at) if c.merged_at else facts.now
    if facts.now - merged_at < facts.soak:
        return c, []
    if any(facts.health.get(name) != "green" for name in watched(c)):
        return c, []
    return _advance(c, f"Step {c.current + 1} soaked healthy: {_md(step.title)}.")


def opened(c: Campaign, pr: int, head_sha: str) -> Campaign:
    """Record the PR the bot opened for the current step, and the head commit it pushed."""
    return replace(c, phase="merging", pr=pr, head_sha=head_sha)


def rollback_opened(c: Campaign, pr: int) -> Campaign:
    return replace(c, rollback_pr=pr)


def _stale(c: Campaign, facts: Facts) -> bool:
    """The smoke signal is the very one the step paused on (nobody re-ran the smoke tests)."""
    return bool(c.paused_on) and facts.smoke_id == c.paused_on


def resume(c: Campaign) -> tuple[Campaign, list[Action]]:
    """``/upgrade`` on a paused campaign: retry the current step (a traffic step starts again).

    A smoke step waits for another smoke signal than the failure it paused on: that failure is
    still on the same commit (nothing merged since) and must not pause the retry again.
    """
    if c.phase != "paused" or c.step is None:
        return c, []
    again = replace(c, phase="pending", pr=None, head_sha="", merged_at="", reason="", rollback_pr=None)
    if again.step is not None and again.step.kind == "smoke":
        return replace(again, phase="smoke"), [
            Say(f"Resumed: waiting for a new smoke signal from {_md(c.green)}.")
        ]
    return again, [
        Say(f"Resumed at step {c.current + 1}."),
        OpenStepPR(again.steps[again.current], again.current),
    ]


def dump_state(c: Campaign) -> str:
    """Return the hidden marker that carries the state in the bot's own tracking issue body."""
    data = asdict(c)
    data["steps"] = [asdict(s) for s in c.steps]
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    # Names and titles come from the repository: a "-->" in one must not end the HTML comment
    # (what follows would render). JSON's \u escapes keep the same data without < > &.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"<!-- {MARKER} {text} -->"


def load_state(text: str) -> Campaign | None:
    """Return the campaign in ``text`` (the bot's own issue body), or ``None`` when absent or malformed.

    Callers pass only text the bot wrote itself (its author checked): a marker in a person's
    comment must never reach here.
    """
    match = _STATE.search(text or "")
    if not match:
        return None
    try:
        data: dict[str, Any] = json.loads(match.group(1))
        steps = tuple(CampaignStep(**{**s, "files": tuple(s.get("files") or ())}) for s in data.pop("steps"))
        data["done_steps"] = tuple(data.get("done_steps") or ())
        data["addons"] = tuple(tuple(str(x) for x in a) for a in data.get("addons") or ())
        return Campaign(steps=steps, **data)
    except (ValueError, TypeError, KeyError):
        return None


def checklist(c: Campaign) -> str:
    """The tracking issue's checklist: done steps ticked, the current one marked."""
    lines = []
    for i, s in enumerate(c.steps):
        tick = "x" if i in c.done_steps else " "
        now = " ← now" if i == c.current and c.phase not in ("done",) else ""
        pr = f" (#{c.pr})" if i == c.current and c.pr else ""
        lines.append(f"- [{tick}] {_md(s.title)}{pr}{now}")
    return "\n".join(lines)
