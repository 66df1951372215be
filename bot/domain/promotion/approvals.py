"""Approval gates by rule name, until the governance rules engine is wired in.

``evaluate_rules`` reads ``approvals.rules`` from the base config when it is a list of
``{name, count|min_approvals|approvals}`` and otherwise asks for one approval from a person
with write, maintain or admin permission. Only the latest review of each reviewer counts;
the PR author and bots never count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.domain.promotion.gates import ApprovalResult

WRITE_PERMISSIONS = frozenset({"write", "maintain", "admin"})


def approvers(reviews: Iterable[Mapping[str, Any]], *, author: str = "") -> list[str]:
    """Logins whose latest decisive review is APPROVED (COMMENTED does not reset it)."""
    latest: dict[str, str] = {}
    for r in reviews:
        login = str((r.get("user") or {}).get("login") or "")
        state = str(r.get("state") or "").upper()
        if not login or login == author or login.endswith("[bot]"):
            continue
        if state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[login] = state
    return sorted(login for login, state in latest.items() if state == "APPROVED")


def _rule_count(config: Mapping[str, Any], rule: str) -> int:
    section = config.get("approvals") or {}
    rules = section.get("rules") if isinstance(section, Mapping) else None
    if isinstance(rules, list):
        for r in rules:
            if isinstance(r, Mapping) and r.get("name") == rule:
                for key in ("count", "min_approvals", "approvals"):
                    if isinstance(r.get(key), int):
                        return max(int(r[key]), 1)
    return 1


def evaluate_rules(
    rules: Sequence[str], config: Mapping[str, Any], approved_by: Sequence[str], writers: Iterable[str]
) -> tuple[ApprovalResult, ...]:
    """One result per rule: satisfied when enough approvers hold write permission."""
    allowed = set(writers)
    counted = [a for a in approved_by if a in allowed]
    out = []
    for rule in rules:
        need = _rule_count(config, rule)
        if len(counted) >= need:
            who = ", ".join(f"@{a}" for a in counted)
            out.append(ApprovalResult(rule, True, f"approved by {who}"))
        else:
            out.append(
                ApprovalResult(
                    rule, False, f"{len(counted)} of {need} approval(s) from people with write access"
                )
            )
    return tuple(out)
