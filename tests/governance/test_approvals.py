"""Approval rules, table-driven: paths, environments, teams, author, CODEOWNERS, staleness, disapproval."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.domain.governance.approvals import (
    ApprovalFacts,
    Review,
    approvals_summary,
    evaluate,
    path_environment,
    plan_lookups,
)
from bot.domain.governance.codeowners import parse_codeowners

HEAD, HEAD_TREE = "h" * 40, "t" * 40
OLD_SAME_TREE, OLD_OTHER_TREE = "s" * 40, "o" * 40

CONFIG: dict[str, Any] = {
    "version": 1,
    "approvals": {
        "codeowners": True,
        "branch_environments": {"release/staging": "staging"},
        "rules": [
            {
                "name": "prod",
                "paths": ["clusters/prod/**"],
                "require": {"count": 1, "teams": ["org/platform-team"]},
            },
            {"name": "staging", "environments": ["staging"], "require": {"users": ["stager"]}},
            {"name": "two eyes", "paths": ["clusters/**"], "require": {"count": 2}},
            {
                "name": "policy",
                "paths": ["policies/**"],
                "require": {"users": ["sec-lead"], "min_permission": "admin"},
                "author_can_approve": True,
            },
            {
                "name": "docs",
                "paths": ["docs/**"],
                "require": {"count": 1},
                "invalidate_on_push": False,
            },
        ],
    },
}
CODEOWNERS = parse_codeowners("/clusters/prod/ @org/prod-owners\n/clusters/prod/README.md\n")
MEMBERS = {
    "org/platform-team": frozenset({"pat", "author"}),
    "org/prod-owners": frozenset({"olga"}),
}


def approve(user: str, commit: str = HEAD) -> Review:
    return Review(user, "APPROVED", commit)


def request_changes(user: str, commit: str = HEAD) -> Review:
    return Review(user, "CHANGES_REQUESTED", commit)


def writers(reviews: tuple[Review, ...]) -> dict[str, str]:
    """Every reviewer has write permission (GitHub counts only their approvals by default)."""
    return {r.user.lower(): "write" for r in reviews}


def facts_of(
    author: str, head: str, tree: str, base: str, paths: tuple[str, ...], *rest: Any, **kw: Any
) -> ApprovalFacts:
    """ApprovalFacts whose reviewers all have write permission unless ``permissions`` says otherwise."""
    reviews = rest[0] if rest else kw.get("reviews", ())
    kw["permissions"] = writers(reviews) | kw.get("permissions", {})
    return ApprovalFacts(author, head, tree, base, paths, *rest, **kw)


@dataclass
class Case:
    id: str
    paths: tuple[str, ...]
    reviews: tuple[Review, ...]
    expect: dict[str, str]  # rule name -> status; rules not listed must not apply
    needed: dict[str, str] = field(default_factory=dict)  # rule name -> expected still_needed text
    base_ref: str = "main"
    permissions: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=lambda: CONFIG)


PROD = ("clusters/prod/eu-1/cluster.yaml",)
CO = "CODEOWNERS `/clusters/prod/`"
CASES = [
    Case(
        "prod-no-reviews",
        PROD,
        (),
        {"prod": "pending", "two eyes": "pending", CO: "pending"},
        {
            "prod": "1 more from @org/platform-team for `clusters/prod/**`",
            "two eyes": "2 more from reviewers with write permission other than the author for `clusters/**`",
            CO: "1 more from @org/prod-owners for `/clusters/prod/`",
        },
    ),
    Case(
        "prod-right-team-and-owner",
        PROD,
        (approve("pat"), approve("olga")),
        {"prod": "satisfied", "two eyes": "satisfied", CO: "satisfied"},
    ),
    Case(
        "prod-wrong-team",
        PROD,
        (approve("random"), approve("olga")),
        {"prod": "pending", "two eyes": "satisfied", CO: "satisfied"},
    ),
    Case(
        "author-does-not-count",
        PROD,
        (approve("author"), approve("olga")),
        {"prod": "pending", "two eyes": "pending", CO: "satisfied"},
        {"two eyes": "1 more from reviewers with write permission other than the author for `clusters/**`"},
    ),
    Case(
        "stale-by-tree-other",
        PROD,
        (approve("pat", OLD_OTHER_TREE), approve("olga")),
        {"prod": "pending", "two eyes": "pending", CO: "satisfied"},
    ),
    Case(
        "same-tree-keeps-approval",
        PROD,
        (approve("pat", OLD_SAME_TREE), approve("olga", OLD_SAME_TREE)),
        {"prod": "satisfied", "two eyes": "satisfied", CO: "satisfied"},
    ),
    Case(
        "unknown-commit-is-stale",
        PROD,
        (approve("pat", "9" * 40), approve("olga")),
        {"prod": "pending", "two eyes": "pending", CO: "satisfied"},
    ),
    Case(
        "invalidate-off-keeps-old-approval",
        ("docs/a.md",),
        (approve("dora", OLD_OTHER_TREE),),
        {"docs": "satisfied"},
    ),
    Case(
        "changes-requested-by-team-member-blocks",
        PROD,
        (approve("olga"), approve("pat"), request_changes("pat2")),
        {"prod": "blocked", "two eyes": "blocked", CO: "satisfied"},
        {"prod": "changes requested by @pat2: they must approve, or the review must be dismissed"},
    ),
    Case(
        "changes-requested-then-approved",
        PROD,
        (
            request_changes("pat", OLD_OTHER_TREE),
            Review("pat", "COMMENTED", HEAD),
            approve("pat"),
            approve("olga"),
        ),
        {"prod": "satisfied", "two eyes": "satisfied", CO: "satisfied"},
    ),
    Case(
        "changes-requested-by-outsider-of-rule-does-not-block-it",
        PROD,
        (approve("pat"), request_changes("olga")),
        {"prod": "satisfied", "two eyes": "blocked", CO: "blocked"},
    ),
    Case(
        "dismissed-review-counts-for-nothing",
        PROD,
        (approve("olga"), request_changes("pat"), Review("pat", "DISMISSED", HEAD)),
        {"prod": "pending", "two eyes": "pending", CO: "satisfied"},
    ),
    Case(
        "env-from-path",
        ("clusters/staging/a.yaml",),
        (approve("stager"),),
        {"staging": "satisfied", "two eyes": "pending"},
    ),
    Case(
        "env-from-base-branch",
        ("common/addons.yaml",),
        (),
        {"staging": "pending"},
        base_ref="release/staging",
    ),
    Case("dev-path-no-env-rule", ("clusters/dev/a.yaml",), (), {"two eyes": "pending"}),
    Case(
        "min-permission-too-low",
        ("policies/p.rego",),
        (approve("sec-lead"),),
        {"policy": "pending"},
        {"policy": "1 more from @sec-lead (with admin permission) for `policies/**`"},
        permissions={"sec-lead": "write"},
    ),
    Case(
        "min-permission-ok",
        ("policies/p.rego",),
        (approve("SEC-LEAD"),),
        {"policy": "satisfied"},
        permissions={"sec-lead": "admin"},
    ),
    Case(
        "unowned-file-needs-no-owner",
        ("clusters/prod/README.md",),
        (approve("pat"), approve("x")),
        {"prod": "satisfied", "two eyes": "satisfied"},
    ),
    Case("nothing-applies", ("README.md",), (), {}),
    # GitHub counts approvals only from people with write permission or more
    Case(
        "read-and-triage-approvals-do-not-count",
        ("clusters/dev/a.yaml",),
        (approve("reader"), approve("triager")),
        {"two eyes": "pending"},
        {"two eyes": "2 more from reviewers with write permission other than the author for `clusters/**`"},
        permissions={"reader": "read", "triager": "triage"},
    ),
    Case(
        "team-member-without-write-does-not-count",
        PROD,
        (approve("pat"), approve("olga"), approve("x")),
        {"prod": "pending", CO: "satisfied", "two eyes": "satisfied"},
        permissions={"pat": "read"},
    ),
    Case(
        "codeowner-without-write-does-not-count",
        PROD,
        (approve("pat"), approve("olga"), approve("x")),
        {"prod": "satisfied", CO: "pending", "two eyes": "satisfied"},
        permissions={"olga": "triage"},
    ),
    Case(
        "rule-opts-out-of-the-permission-check",
        ("clusters/dev/a.yaml",),
        (approve("reader"), approve("triager")),
        {"anyone": "satisfied"},
        permissions={"reader": "read", "triager": "none"},
        config={
            "approvals": {"rules": [{"name": "anyone", "require": {"count": 2, "min_permission": "none"}}]}
        },
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rules(case: Case) -> None:
    facts = ApprovalFacts(
        author="author",
        head_sha=HEAD,
        head_tree=HEAD_TREE,
        base_ref=case.base_ref,
        changed_paths=case.paths,
        reviews=case.reviews,
        trees={OLD_SAME_TREE: HEAD_TREE, OLD_OTHER_TREE: "x" * 40, HEAD: HEAD_TREE},
        team_members={**MEMBERS, "org/platform-team": MEMBERS["org/platform-team"] | {"pat2", "author2"}},
        permissions=writers(case.reviews) | case.permissions,
        codeowners=CODEOWNERS,
    )
    result = evaluate(facts, case.config)
    assert {r.name: r.status for r in result.rules} == case.expect
    by_name = {r.name: r for r in result.rules}
    for name, text in case.needed.items():
        assert by_name[name].still_needed == text
    assert result.ok is all(s == "satisfied" for s in case.expect.values())
    for r in result.rules:
        assert bool(r.still_needed) is (r.status != "satisfied")


def test_stale_approval_is_named_in_summary() -> None:
    facts = facts_of(
        "author", HEAD, HEAD_TREE, "main", PROD, (approve("pat", OLD_OTHER_TREE),), team_members=MEMBERS
    )
    result = evaluate(facts, {"approvals": {"rules": CONFIG["approvals"]["rules"][:1]}})
    [rule] = result.rules
    assert rule.stale == ("pat",)
    title, text = approvals_summary(result)
    assert title == "Waiting for approvals: 0 of 1 rules satisfied"
    needed = "1 more from @org/platform-team for `clusters/prod/**`"
    assert f"| prod | `clusters/prod/**` | ⏳ waiting | — | {needed} |" in text
    assert "- @pat for prod" in text
    assert "<details><summary>Changed files per rule</summary>" in text


def test_summary_titles() -> None:
    ok = evaluate(facts_of("a", HEAD, HEAD_TREE, "main", ("docs/x",), (approve("b"),)), CONFIG)
    assert approvals_summary(ok)[0] == "Approved: 1 of 1 rule satisfied"
    none = evaluate(facts_of("a", HEAD, HEAD_TREE, "main", ("README.md",)), CONFIG)
    assert approvals_summary(none)[0] == "No approval rule applies to this change"
    blocked = evaluate(facts_of("a", HEAD, HEAD_TREE, "main", ("docs/x",), (request_changes("b"),)), CONFIG)
    assert approvals_summary(blocked)[0] == "Blocked: changes requested by @b"


def test_email_owners_are_explained() -> None:
    facts = ApprovalFacts(
        "a", HEAD, HEAD_TREE, "main", ("x.go",), codeowners=parse_codeowners("*.go dev@example.com\n")
    )
    result = evaluate(facts, {})
    assert result.rules[0].status == "pending"
    assert "write them as @login" in result.notes[0]


def test_plan_lookups_only_for_applicable_rules_and_reviewers() -> None:
    reviews = (approve("pat"), Review("bob", "COMMENTED", HEAD), request_changes("olga"))
    plan = plan_lookups(CONFIG, PROD, "main", reviews, CODEOWNERS)
    assert plan.reviewers == ("olga", "pat")
    assert plan.teams == ("org/platform-team", "org/prod-owners")
    assert plan.needs_permissions is True  # approvals count only from writers, unless a rule opts out
    opted_out = {"approvals": {"rules": [{"name": "any", "require": {"count": 1, "min_permission": "none"}}]}}
    assert plan_lookups(opted_out, PROD, "main", reviews, None).needs_permissions is False
    assert plan_lookups(CONFIG, ("policies/a",), "main", reviews, None).needs_permissions is True


def test_path_environment() -> None:
    assert path_environment(CONFIG, "clusters/prod/a/b.yaml", "main") == "prod"
    assert path_environment(CONFIG, "common/x.yaml", "release/staging") == "staging"
    assert (
        path_environment({"environments": [{"name": "dev", "branch": "main"}]}, "common/x", "main") == "dev"
    )
    assert (
        path_environment({"environments": [{"name": "dev"}, {"name": "prod"}]}, "common/x", "prod") == "prod"
    )
    assert path_environment({}, "common/x", "main") is None


def test_a_when_dangerous_rule_waits_while_the_diff_is_unknown() -> None:
    """Dangers unknown (the bot has not rendered the head yet): the rule applies and is never satisfied."""
    from dataclasses import replace

    from bot.domain.config import parse_config
    from bot.domain.governance.approvals import ApprovalFacts, Review, evaluate

    config = parse_config(
        "version: 1\napprovals:\n  codeowners: false\n  rules:\n"
        "    - name: destroys\n      when: dangerous\n      require: {users: [sre-lead]}\n"
    )
    approved = (Review("sre-lead", "APPROVED", "h" * 40),)
    facts = ApprovalFacts(
        "dev",
        "h" * 40,
        "t" * 40,
        "main",
        ("apps/a.yaml",),
        reviews=approved,
        permissions={"sre-lead": "write"},  # only approvals from write or more count
        dangers=None,
    )
    (rule,) = evaluate(facts, config).rules
    assert rule.status == "pending" and rule.approved_by == ("sre-lead",)
    assert "waiting for the rendered diff" in rule.still_needed
    assert not evaluate(replace(facts, reviews=()), config).ok
    assert evaluate(replace(facts, dangers=("delete.cluster",)), config).ok
    assert evaluate(replace(facts, dangers=()), config).rules == ()
