"""The tracking issue of an upgrade: its title and body, finding the bot's own, the calendar's choice (pure).

One issue per cluster and target carries the plan, the campaign's checklist and two hidden
markers: the key (``cluster@target``) and, once the campaign started, its state
(:func:`~bot.domain.upgrades.campaign.dump_state`). Only issues the bot itself opened count:
the author is checked (login and type ``Bot``), so an issue or comment a person wrote with the
same markers is never trusted. A closed issue is never reopened: a person who closes the
calendar's issue has said no to that upgrade.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from bot.domain import escape
from bot.domain.authors import by_bot
from bot.domain.commands import code
from bot.domain.upgrades.campaign import Campaign, checklist, dump_state, load_state
from bot.domain.upgrades.plan import DueUpgrade
from bot.domain.validate.eks import format_minor

LABEL = "gitops-bot/upgrade"
KEY_MARKER = "gitops-bot:upgrade-key"
_KEY = re.compile(r"<!-- " + re.escape(KEY_MARKER) + r" ([A-Za-z0-9._~%-]+)@(\d+\.\d+) -->")
STEP_BRANCH_PREFIX = "gitops-bot/upgrade/"


@dataclass(frozen=True, slots=True)
class TrackedIssue:
    """One of the bot's own upgrade issues, with the campaign its body carries (None: not started)."""

    number: int
    cluster: str
    target: str
    open: bool
    url: str
    body: str
    campaign: Campaign | None


def key_marker(cluster: str, target: str) -> str:
    """The hidden key of an upgrade issue. The name comes from the repository, in any case (EKS
    allows ``Prod_Use1``): percent-encoded, so nothing in it can end the HTML comment and every
    name reads back as it was (plain lower-case names are written as they are)."""
    return f"<!-- {KEY_MARKER} {quote(cluster, safe='')}@{target} -->"


def tracked(issues: Iterable[Mapping[str, Any]], bot_login: str) -> list[TrackedIssue]:
    """The bot's own upgrade issues among ``issues`` (pull requests and people's issues skipped)."""
    out = []
    for issue in issues:
        if "pull_request" in issue or not by_bot(issue, bot_login):
            continue
        body = str(issue.get("body") or "")
        match = _KEY.search(body)
        if match is None:
            continue
        out.append(
            TrackedIssue(
                number=int(issue["number"]),
                cluster=unquote(match.group(1)),
                target=match.group(2),
                open=issue.get("state") == "open",
                url=str(issue.get("html_url") or ""),
                body=body,
                campaign=load_state(body),
            )
        )
    return sorted(out, key=lambda t: t.number)


def running(issues: Iterable[TrackedIssue], cluster: str) -> TrackedIssue | None:
    """The open upgrade of ``cluster`` (one campaign per cluster at a time), if any."""
    return next((t for t in issues if t.open and t.cluster == cluster), None)


def title(cluster: str, target: str, strategy: str) -> str:
    how = "blue/green" if strategy == "blue-green" else "in place"
    return f"Upgrade {cluster} to Kubernetes {target} ({how})"


def body(
    cluster: str, target: str, plan_md: str, campaign: Campaign | None, *, why: str = "", started_by: str = ""
) -> str:
    """The tracking issue's body: why, the plan, the checklist and where the campaign stands, the markers."""
    parts = []
    if why:
        parts.append(why)
    if campaign is None:
        parts.append(
            f"Comment `/upgrade {cluster}` here to start (people with the role the environment needs), "
            "or close this issue to skip this upgrade; the bot will not open it again."
        )
    else:
        who = f" by @{started_by}" if started_by else ""
        parts.append(f"**Campaign** started{who}: {_status(campaign)}")
        parts.append(checklist(campaign))
        parts.append(
            "`/hold` and `/unhold` here pause and resume it; `/rollback` restores the last good weights."
        )
    parts.append(f"<details><summary>The plan</summary>\n\n{plan_md}\n</details>")
    parts.append(key_marker(cluster, target))
    if campaign is not None:
        parts.append(dump_state(campaign))
    return "\n\n".join(parts) + "\n"


def with_state(old_body: str, campaign: Campaign, *, started_by: str = "", plan_md: str = "") -> str:
    """``old_body`` (the bot's own) with the campaign's checklist and state (and plan) replaced."""
    plan = re.search(r"<details><summary>The plan</summary>\n\n(.*?)\n</details>", old_body, re.S)
    why = old_body.split("\n\n", 1)[0] if old_body.startswith("EKS standard support") else ""
    by = re.search(r"\*\*Campaign\*\* started by @([A-Za-z0-9-]+)", old_body)
    return body(
        campaign.cluster,
        campaign.target,
        plan_md or (plan.group(1) if plan else ""),
        campaign,
        why=why,
        started_by=started_by or (by.group(1) if by else ""),
    )


def _status(c: Campaign) -> str:
    step = c.step
    where = f"step {c.current + 1} of {len(c.steps)}" + (f" ({escape.text(step.title)})" if step else "")
    text = {
        "pending": f"opening {where}",
        "merging": f"{where}: waiting for #{c.pr} to merge",
        "soaking": f"{where}: merged, soaking",
        "smoke": f"{where}: waiting for {code(c.green)}'s smoke signal",
        "rolling-back": f"{where}: rolling back to {c.good_weight}% on {code(c.green)}"
        + (f" (#{c.rollback_pr})" if c.rollback_pr else ""),
        "paused": f"paused at {where}: {c.reason or 'on hold'}",
        "done": "done",
    }
    return text.get(c.phase, c.phase)


def why_due(due: DueUpgrade) -> str:
    return (
        f"EKS standard support for {format_minor(due.version)} ends on {due.end_of_standard.isoformat()} "
        f"({due.days_left} days left); {code(due.cluster)} ({due.env}) runs it."
    )


def calendar_choice(
    due: Iterable[DueUpgrade], issues: Iterable[TrackedIssue], max_open: int
) -> list[DueUpgrade]:
    """The due upgrades to open now: once per cluster and target (closed ones never again), capped.

    A cluster with any open upgrade is skipped (one campaign per cluster); the open upgrade
    issues count against ``max_open``.
    """
    known = list(issues)
    seen = {(t.cluster, t.target) for t in known}
    busy = {t.cluster for t in known if t.open}
    room = max_open - sum(1 for t in known if t.open)
    out = []
    for d in due:
        target = format_minor(d.target)
        if room <= 0:
            break
        if (d.cluster, target) in seen or d.cluster in busy:
            continue
        out.append(d)
        busy.add(d.cluster)
        room -= 1
    return out


def step_branch(c: Campaign, index: int, *, rollback: bool = False) -> str:
    """The bot's branch for step ``index`` (one per campaign and step; a rollback has its own)."""
    kind = "rollback" if rollback else c.steps[index].kind
    return f"{STEP_BRANCH_PREFIX}{c.cluster}-{c.target}/{index + 1}-{kind}"
