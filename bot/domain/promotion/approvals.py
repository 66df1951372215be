"""Approval gates by rule name, decided by the governance approval engine.

A promotion gate names rules of ``approvals.rules`` (``gates.approvals: [prod-owners]``).
On a promotion PR a named rule applies whatever its ``paths``/``environments`` say (the gate
chose it), CODEOWNERS does not apply (the change was reviewed when it first merged), and an
approver needs at least ``write`` permission unless the rule sets ``min_permission``: a
promotion is a deployment. Everything else is the governance semantics
(:mod:`bot.domain.governance.approvals`): latest review per person, approvals stale after a
push that changes the tree, ``CHANGES_REQUESTED`` blocks, the author only with
``author_can_approve``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.domain.governance.approvals import ApprovalFacts, evaluate
from bot.domain.promotion.gates import ApprovalResult

PROMOTION_PATH = "(promotion)"  # the one "changed path" every named rule matches


def promotion_rules_config(
    config: Mapping[str, Any], rules: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """The config to evaluate ``rules`` on a promotion PR, and the names no rule defines.

    Keeps only the named rules (names compare case-insensitively), without path or
    environment filters, with ``min_permission`` defaulting to ``write``, and CODEOWNERS off.
    """
    section = config.get("approvals") or {}
    defined = {
        str(r.get("name", "")).lower(): r for r in section.get("rules") or [] if isinstance(r, Mapping)
    }
    chosen: list[dict[str, Any]] = []
    missing: list[str] = []
    for name in rules:
        rule = defined.get(name.lower())
        if rule is None:
            missing.append(name)
            continue
        require = dict(rule.get("require") or {})
        require.setdefault("min_permission", "write")
        kept = {k: v for k, v in rule.items() if k not in ("paths", "environments", "require")}
        chosen.append({**kept, "name": name, "require": require})
    approvals = {
        "rules": chosen,
        "codeowners": False,
        "invalidate_on_push": section.get("invalidate_on_push", True),
    }
    return {"approvals": approvals}, missing


def approval_results(
    rules: Sequence[str], config: Mapping[str, Any], facts: ApprovalFacts
) -> tuple[ApprovalResult, ...]:
    """One gate result per named rule (in the order given); ``facts.changed_paths`` is ignored."""
    scoped, missing = promotion_rules_config(config, rules)
    facts = ApprovalFacts(
        author=facts.author,
        head_sha=facts.head_sha,
        head_tree=facts.head_tree,
        base_ref=facts.base_ref,
        changed_paths=(PROMOTION_PATH,),
        reviews=facts.reviews,
        trees=facts.trees,
        team_members=facts.team_members,
        permissions=facts.permissions,
    )
    by_name = {r.name: r for r in evaluate(facts, scoped).rules}
    out = []
    for name in rules:
        if name in missing:
            detail = (
                f"no approval rule named `{name}` in `approvals.rules`; define it in .github/gitops-bot.yml"
            )
            out.append(ApprovalResult(name, False, detail))
            continue
        r = by_name[name]
        if r.satisfied:
            out.append(ApprovalResult(name, True, "approved by " + ", ".join(f"@{a}" for a in r.approved_by)))
        else:
            detail = (r.still_needed or r.status).replace(" for `**`", "")  # every rule covers the whole PR
            if r.blocked_by:
                detail = f"changes requested by {', '.join(f'@{b}' for b in r.blocked_by)}; {detail}"
            if r.stale:
                stale = ", ".join(f"@{s}" for s in r.stale)
                detail += f" (approvals before the last push no longer count: {stale})"
            out.append(ApprovalResult(name, False, detail))
    return tuple(out)
