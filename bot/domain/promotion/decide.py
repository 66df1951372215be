"""Promotion decisions: facts in, what to do out.

The handler (:mod:`handlers.promotion`) gathers facts from GitHub, git and the bot's own
store, calls these functions and applies what they return. Nothing here does I/O.

Provenance: a PR is a promotion (or a rollback) only when the bot says so from its own state
(:class:`Record`, kept in the bot's store): the PR was opened by this App and its head is a
commit the bot pushed. PR bodies, labels and branch names are written by people too and
decide nothing (:func:`standing`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from bot.domain.authors import same_login
from bot.domain.labels import GATES_END, GATES_START
from bot.domain.promotion.environments import Chain, Environment
from bot.domain.promotion.plan import History

MAX_PUSHED = 20  # shas remembered per branch; a branch is rebuilt a few times at most
MAX_MADE = 500  # commits the bot made on a branch that it remembers (more: the rest are checked as anyone's)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A decision not to act, with the sentence for people (``ok``: nothing is wrong)."""

    message: str
    ok: bool = False
    url: str | None = None


# --- the bot's own record of what it made ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """What the bot made on one of its branches, kept in its own store (never read from a PR).

    ``kind`` is ``promotion``, ``rollback`` or ``upgrade`` (a cluster-upgrade step: an ordinary
    PR for review, recorded only so its commits are known as the bot's); ``pushed`` the shas the
    bot pushed to the branch (newest last); ``made`` every commit the bot created for those
    pushes (a cherry-picked range, a merge commit, a step), which the signature check accepts
    as the bot's own; ``number`` the PR the bot opened from it (0 until it is open).
    """

    kind: Literal["promotion", "rollback", "upgrade"]
    branch: str
    base: str
    history: History | None = None
    pushed: tuple[str, ...] = ()
    number: int = 0
    reverted: int = 0  # rollback: the PR it reverts
    made: tuple[str, ...] = ()

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "kind": self.kind,
            "branch": self.branch,
            "base": self.base,
            "pushed": list(self.pushed),
            "number": self.number,
            "reverted": self.reverted,
            "made": list(self.made),
            "history": self.history.to_json() if self.history is not None else None,
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Record | None:
        """The record in ``text``, or None when there is none or it is unreadable."""
        if not text:
            return None
        try:
            data = json.loads(text)
            kind = data["kind"]
            if kind not in ("promotion", "rollback", "upgrade"):
                return None
            history = History.from_json(data["history"]) if data.get("history") else None
            return cls(
                kind=kind,
                branch=str(data["branch"]),
                base=str(data["base"]),
                history=history,
                pushed=tuple(str(s) for s in data.get("pushed") or ()),
                number=int(data.get("number") or 0),
                reverted=int(data.get("reverted") or 0),
                made=tuple(str(s) for s in data.get("made") or ()),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def with_push(self, sha: str, made: Sequence[str] = ()) -> Record:
        """This record after the bot pushed ``sha`` to its branch, having created ``made`` for it."""
        pushed = (*(s for s in self.pushed if s != sha), sha)
        new = [s for s in (*made, sha) if s not in self.made]
        return replace(self, pushed=pushed[-MAX_PUSHED:], made=(*self.made, *dict.fromkeys(new))[-MAX_MADE:])

    def with_number(self, number: int) -> Record:
        return replace(self, number=number)

    def with_history(self, history: History) -> Record:
        return replace(self, history=history)


class Standing(enum.StrEnum):
    """What a PR is to the bot."""

    NONE = "none"  # not something the bot made: an ordinary PR
    PROMOTION = "promotion"  # the bot's promotion, its head as the bot pushed it
    ROLLBACK = "rollback"  # the bot's rollback, its head as the bot pushed it
    LOST = "lost"  # the bot's PR, but someone else pushed to it: an ordinary PR, reviewed as one


@dataclass(frozen=True, slots=True)
class PullFacts:
    """What :func:`standing` needs to know about a PR (from GitHub) and the bot's record of it."""

    number: int
    author: str
    head_ref: str
    head_sha: str
    base_ref: str
    record: Record | None = None


def standing(pr: PullFacts, bot_login: str) -> Standing:
    """Whether ``pr`` is the bot's promotion or rollback, judged on the bot's own record.

    The author must be this App, the record must be for this branch, base and PR, and the
    head must be a commit the bot pushed; with a foreign head the PR loses its standing
    (:attr:`Standing.LOST`). Anything else is an ordinary PR, whatever its body or branch says.
    """
    rec = _record_of(pr, bot_login)
    if rec is None:
        return Standing.NONE
    if rec.kind == "upgrade":  # an upgrade step is reviewed like any PR
        return Standing.NONE
    if pr.head_sha not in rec.pushed:
        return Standing.LOST
    return Standing.PROMOTION if rec.kind == "promotion" else Standing.ROLLBACK


def bot_made(pr: PullFacts, bot_login: str) -> frozenset[str]:
    """The commits of ``pr`` the bot created itself, from its own record (empty when it has none).

    Only for a PR this App opened from the recorded branch onto the recorded base. A commit
    is the bot's by its sha, so content anyone else adds later is never among them.
    """
    rec = _record_of(pr, bot_login)
    return frozenset((*rec.made, *rec.pushed)) if rec is not None else frozenset()


def _record_of(pr: PullFacts, bot_login: str) -> Record | None:
    """``pr``'s record when it is of this PR: opened by this App from the recorded branch onto the
    recorded base (and, once numbered, with its number)."""
    rec = pr.record
    if (
        rec is None
        or not same_login(pr.author, bot_login)
        or rec.branch != pr.head_ref
        or rec.base != pr.base_ref
        or (rec.number and rec.number != pr.number)
    ):
        return None
    return rec


def lost_standing_text(head_sha: str, pushed: Sequence[str]) -> str:
    """Why a promotion PR is now reviewed like any PR."""
    last = f" (the bot last pushed `{pushed[-1][:7]}`)" if pushed else ""
    return (
        f"Someone other than the bot pushed to this branch: its head `{head_sha[:7]}` is not a commit "
        f"the bot made{last}. It is no longer a promotion: the approval rules apply to it like any "
        "PR, and the bot will not merge it. Review the change and merge it by hand, or close it and "
        "comment `/promote <env>` on the source PR to have the bot rebuild it."
    )


# --- /promote and merges: where a change goes ------------------------------------------------


def choose_target(
    chain: Chain, *, source_pr: int, base: str, target_env: str | None, is_rollback: bool
) -> tuple[Environment, Environment] | Refusal:
    """``(source, next)`` environments for merged PR ``source_pr`` on ``base``, or why not.

    ``target_env`` (from ``/promote <env>``) must name the next environment; a rollback (by
    the bot's record) stays where it is.
    """
    source = chain.by_branch(base)
    if source is None:
        envs = ", ".join(f"`{e.name}` (`{e.branch}`)" for e in chain.environments)
        return Refusal(
            f"#{source_pr} merged into `{base}`, which is not an environment branch. Environments: {envs}."
        )
    nxt = chain.next_after(source)
    if target_env is not None:
        wanted = chain.by_name(target_env)
        if wanted is None:
            return Refusal(f"There is no environment `{target_env}`. Environments: {', '.join(chain.names)}.")
        if wanted == source:
            return Refusal(f"#{source_pr} is already in `{source.name}`.", ok=True)
        if wanted != nxt:
            step = f"`{nxt.name}`" if nxt else "nowhere (it is the last environment)"
            return Refusal(
                f"#{source_pr} is in `{source.name}`; it goes to {step} next. "
                f"Environments are promoted one at a time, so `{wanted.name}` gets it from there."
            )
    if nxt is None:
        return Refusal(f"`{source.name}` is the last environment; nothing to promote.", ok=True)
    if is_rollback:
        return Refusal(f"#{source_pr} is a rollback; rollbacks stay in `{source.name}`.", ok=True)
    return source, nxt


@dataclass(frozen=True, slots=True)
class PrRef:
    """A PR the bot found for one of its branches."""

    number: int
    state: str
    merged: bool
    url: str


def existing_pr(
    prs: Sequence[PrRef], *, source_pr: int, env: str, explicit: bool, kind: str = "promotion"
) -> PrRef | Refusal | None:
    """The PR to update for a promotion (or rollback) branch, None to open one, or why not.

    Already merged: done. A closed one is reopened only by an explicit ``/promote``; otherwise
    it stays closed (a person closed it).
    """
    merged = next((p for p in prs if p.merged), None)
    if merged is not None:
        if kind == "rollback":
            return Refusal(
                f"#{source_pr} was already rolled back in #{merged.number}.", ok=True, url=merged.url
            )
        return Refusal(
            f"#{source_pr} is already promoted to `{env}` in #{merged.number}.", ok=True, url=merged.url
        )
    open_ = next((p for p in prs if p.state == "open"), None)
    if open_ is not None:
        return open_
    if prs and not explicit:
        return Refusal(
            f"The promotion of #{source_pr} to `{env}` (#{prs[0].number}) was closed; "
            f"comment `/promote {env}` on #{source_pr} to reopen it.",
            ok=True,
        )
    return prs[0] if prs else None


class BranchAction(enum.StrEnum):
    PUSH = "push"  # point the branch at the bot's new build
    KEEP = "keep"  # leave the branch as it is
    CONFLICT = "conflict"  # nothing to push: say so on the source PR


def branch_action(
    *, current: str, built: str | None, trusted: bool, open_pr: bool, up_to_date: bool
) -> BranchAction:
    """What to do with a promotion branch now at ``current`` when the bot built ``built``.

    A branch someone else pushed to (not ``trusted``) under an open PR is kept: their work is
    never overwritten, and the PR is reviewed as any PR. The bot's own branch is kept while it
    is up to date with the target and rebuilt when the target moved. When the change does not
    apply any more (``built`` None) an open PR keeps its branch, else the conflict is reported.
    """
    if current and open_pr and (not trusted or built is None):
        return BranchAction.KEEP
    if built is None:
        return BranchAction.CONFLICT
    if current and open_pr and up_to_date:
        return BranchAction.KEEP
    return BranchAction.PUSH


# --- evaluation ------------------------------------------------------------------------------


def closed_outcome(*, number: int, merged: bool, closed: bool, history: History) -> str | None:
    """The answer for a promotion PR that is merged or closed (None: it is open)."""
    if merged:
        return f"#{number} is merged."
    if closed:
        return f"#{number} is closed; `/promote {history.target_env}` on #{history.source_pr} reopens it."
    return None


def in_red_window(
    *, enabled: bool, needs_health: bool, merged_at: datetime | None, soak: timedelta, now: datetime
) -> bool:
    """Whether red health of an environment now should roll back a promotion merged into it.

    Only with ``rollback_on_red``, health configured, and within the soak after the merge (no
    soak: any time).
    """
    if not enabled or not needs_health or merged_at is None:
        return False
    return soak.total_seconds() <= 0 or now - merged_at <= soak


# --- the gates block of the PR body --------------------------------------------------------


def gates_block(body: str) -> str | None:
    """The checklist between the gates markers of a body the bot wrote, or None."""
    start, end = body.find(GATES_START), body.find(GATES_END)
    if start < 0 or end < start:
        return None
    return body[start + len(GATES_START) : end].strip()


def with_gates(body: str, block: str) -> str:
    """Put the gate checklist between the gates markers under ``### Gates``."""
    tagged = f"{GATES_START}\n{block}\n{GATES_END}"
    if GATES_START in body and GATES_END in body:
        start, end = body.find(GATES_START), body.find(GATES_END) + len(GATES_END)
        return body[:start] + tagged + body[end:]
    return body.replace("### Gates\n\n", f"### Gates\n\n{tagged}", 1)


# --- the hold --------------------------------------------------------------------------------


class HoldChange(enum.StrEnum):
    HOLD = "hold"  # record the hold
    RELEASE = "release"  # clear the hold
    RESTORE = "restore"  # put the label back: the remover may not release holds
    NOTHING = "nothing"


def hold_label_change(*, action: str, sender: str, bot_login: str, may_release: bool) -> HoldChange:
    """What a person adding or removing the hold label means for the bot's hold.

    Anyone who can label may hold; releasing needs the commands' permission (the same as
    ``/unhold``). The bot's own label changes follow its commands and change nothing here.
    """
    if sender == bot_login:
        return HoldChange.NOTHING
    if action == "labeled":
        return HoldChange.HOLD
    return HoldChange.RELEASE if may_release else HoldChange.RESTORE


def hold_restored_text(sender: str, label: str, role: str) -> str:
    """The reply when the hold label was removed by someone who may not release it."""
    return (
        f"@{sender} the `{label}` label was put back: releasing a hold needs write, maintain or admin "
        f"permission on this repository (your role here: *{role}*). The promotion stays held; "
        "someone with write access can comment `/unhold`."
    )
