"""Merge groups of GitHub's merge queue: what a group's ref says, and how per-PR checks carry over.

Pure: facts in, decisions out. A merge group is a commit GitHub builds from the base branch and
the queued pull requests ahead of (and including) one entry, on a read-only branch
``gh-readonly-queue/<base>/pr-<number>-<parent sha>``. The bot judges the *combined change* of
the group (render, validate) like a pull request; the per-PR checks (approvals, signatures)
are about people and commits GitHub already judged when it let each PR into the queue, so the
group carries over what the bot itself concluded on each PR's head, and fails closed when a PR
in the group has no such conclusion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

QUEUE_REF = re.compile(
    r"refs/heads/gh-readonly-queue/(?P<base>.+)/pr-(?P<number>[0-9]+)-(?P<sha>[0-9a-f]{40,64})"
)
PASSING = frozenset({"success", "neutral", "skipped"})


@dataclass(frozen=True, slots=True)
class QueueRef:
    """A parsed ``gh-readonly-queue`` ref: the target branch, the entry's PR number and parent sha."""

    base: str
    number: int
    parent_sha: str


def parse_queue_ref(ref: str) -> QueueRef | None:
    """Return the parts of a merge group's full ref, or None when it is not one GitHub makes."""
    m = QUEUE_REF.fullmatch(ref)
    if m is None:
        return None
    return QueueRef(m["base"], int(m["number"]), m["sha"])


@dataclass(frozen=True, slots=True)
class QueuedPull:
    """What the bot found about one PR of a merge group.

    ``head_in_group`` is False when the PR's current head is not in the group (it moved after it
    was queued), ``conclusions`` maps check-run names to what *this App* concluded on that head.
    """

    number: int
    head_sha: str
    head_in_group: bool
    conclusions: Mapping[str, str | None]


@dataclass(frozen=True, slots=True)
class CarriedCheck:
    """One check run to report on the group's head: name, conclusion, title, markdown summary."""

    name: str
    conclusion: Literal["success", "failure"]
    title: str
    summary: str


def carry_over(name: str, pulls: Sequence[QueuedPull]) -> CarriedCheck:
    """Decide check ``name`` for a merge group from the bot's own conclusions on each PR's head.

    Passes only when every PR's head is in the group and the bot concluded success (or
    neutral/skipped, which GitHub counts as passing) there; a missing run is a failure.
    """
    rows = ["| Pull request | Head | Result |", "| --- | --- | --- |"]
    bad = 0
    for pull in sorted(pulls, key=lambda p: p.number):
        verdict = pull.conclusions.get(name)
        if not pull.head_in_group:
            result, ok = "head moved after it was queued", False
        elif verdict is None:
            result, ok = f"no `{name}` result from gitops-bot on this commit", False
        else:
            result, ok = f"`{verdict}`", verdict in PASSING
        bad += not ok
        rows.append(f"| #{pull.number} | `{pull.head_sha[:12]}` | {'✔' if ok else '✘'} {result} |")
    if not pulls:
        return CarriedCheck(name, "failure", "No pull request found in this merge group", "\n".join(rows))
    intro = (
        f"`{name}` is judged per pull request; this merge group carries over what gitops-bot concluded "
        "on the head of each pull request it contains."
    )
    if bad:
        title = f"{bad} of {len(pulls)} pull request(s) in the group do not pass `{name}`"
        return CarriedCheck(name, "failure", title, "\n".join([intro, "", *rows]))
    title = f"All {len(pulls)} pull request(s) in the group pass `{name}`"
    return CarriedCheck(name, "success", title, "\n".join([intro, "", *rows]))
