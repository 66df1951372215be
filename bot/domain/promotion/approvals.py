"""Approval gates by rule name, read from the governance section ``approvals.rules``.

A promotion gate names rules (``gates.approvals: [prod-owners]``); each rule's ``require``
block says who counts: ``count`` distinct approvals (default 1), only ``users`` and members of
``teams`` when given, and at least ``min_permission`` (default ``write`` here: a promotion is
a deployment, so read-only reviewers never count). The PR author and bots never count unless
``author_can_approve``. Only each reviewer's latest decisive review counts. The rule's
``paths``/``environments`` filters do not apply: the gate names the rule explicitly.

This mirrors the governance engine's rule format so one configuration serves both; the
handler gathers permissions and team memberships and this module decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.domain.promotion.gates import ApprovalResult

WRITE_PERMISSIONS = frozenset({"write", "maintain", "admin"})
_RANK = {"none": 0, "read": 1, "triage": 2, "write": 3, "maintain": 4, "admin": 5}


@dataclass(frozen=True, slots=True)
class Requirement:
    """Who must approve for one named rule; ``defined`` is False when no rule has that name."""

    rule: str
    defined: bool
    count: int = 1
    users: frozenset[str] = frozenset()
    teams: tuple[str, ...] = ()
    min_permission: str = "write"
    author_can_approve: bool = False


def requirement(config: Mapping[str, Any], rule: str) -> Requirement:
    """Read rule ``rule`` from ``approvals.rules`` (names compare case-insensitively)."""
    section = config.get("approvals") or {}
    rules = section.get("rules") if isinstance(section, Mapping) else None
    for r in rules or []:
        if isinstance(r, Mapping) and str(r.get("name", "")).lower() == rule.lower():
            req = r.get("require") or {}
            return Requirement(
                rule=rule,
                defined=True,
                count=max(int(req.get("count") or 1), 1),
                users=frozenset(str(u).lstrip("@").lower() for u in req.get("users") or ()),
                teams=tuple(str(t).lstrip("@").lower() for t in req.get("teams") or ()),
                min_permission=str(req.get("min_permission") or "write"),
                author_can_approve=bool(r.get("author_can_approve", False)),
            )
    return Requirement(rule=rule, defined=False)


def approvers(
    reviews: Iterable[Mapping[str, Any]], *, author: str = "", author_counts: bool = False
) -> list[str]:
    """Logins whose latest decisive review is APPROVED (COMMENTED does not reset it)."""
    latest: dict[str, str] = {}
    for r in reviews:
        login = str((r.get("user") or {}).get("login") or "")
        state = str(r.get("state") or "").upper()
        if not login or login.endswith("[bot]") or (login == author and not author_counts):
            continue
        if state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[login] = state
    return sorted(login for login, state in latest.items() if state == "APPROVED")


def evaluate_rules(
    requirements: Sequence[Requirement],
    approved_by: Sequence[str],
    permissions: Mapping[str, str],
    team_members: Mapping[str, frozenset[str]],
    *,
    author: str = "",
) -> tuple[ApprovalResult, ...]:
    """One result per rule: satisfied when enough qualifying people approved.

    ``permissions`` maps login to its repository permission; ``team_members`` maps
    ``org/team`` to the lowercase logins known to be members (only approvers are looked up).
    """
    out = []
    for req in requirements:
        if not req.defined:
            out.append(
                ApprovalResult(
                    req.rule,
                    False,
                    f"no approval rule named `{req.rule}` in `approvals.rules`; "
                    "define it in .github/gitops-bot.yml",
                )
            )
            continue
        floor = _RANK.get(req.min_permission, _RANK["write"])
        counted = []
        for login in approved_by:
            low = login.lower()
            if login == author and not req.author_can_approve:
                continue
            if _RANK.get(permissions.get(login, "none"), 0) < floor:
                continue
            if req.users or req.teams:
                in_team = any(low in team_members.get(t, frozenset()) for t in req.teams)
                if low not in req.users and not in_team:
                    continue
            counted.append(login)
        if len(counted) >= req.count:
            out.append(ApprovalResult(req.rule, True, "approved by " + ", ".join(f"@{a}" for a in counted)))
            continue
        who = []
        if req.users:
            who.append(", ".join(f"@{u}" for u in sorted(req.users)))
        if req.teams:
            who.append(", ".join(f"@{t}" for t in req.teams))
        whom = f" from {' or '.join(who)}" if who else ""
        out.append(
            ApprovalResult(
                req.rule,
                False,
                f"{len(counted)} of {req.count} approval(s){whom} "
                f"with {req.min_permission} permission or more",
            )
        )
    return tuple(out)
