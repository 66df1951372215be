"""Approval gates by rule name, with the governance rule format."""

from __future__ import annotations

from bot.domain.promotion.approvals import approvers, evaluate_rules, requirement

CONFIG = {
    "approvals": {
        "rules": [
            {"name": "prod-owners", "require": {"count": 2, "teams": ["org/sre"], "users": ["@boss"]}},
            {"name": "any-writer"},
            {"name": "maintainers", "require": {"min_permission": "maintain"}, "author_can_approve": True},
        ]
    }
}


def test_latest_decisive_review_counts_and_bots_and_author_do_not() -> None:
    reviews = [
        {"user": {"login": "ann"}, "state": "APPROVED"},
        {"user": {"login": "ann"}, "state": "COMMENTED"},
        {"user": {"login": "bob"}, "state": "APPROVED"},
        {"user": {"login": "bob"}, "state": "CHANGES_REQUESTED"},
        {"user": {"login": "ci[bot]"}, "state": "APPROVED"},
        {"user": {"login": "author"}, "state": "APPROVED"},
    ]
    assert approvers(reviews, author="author") == ["ann"]
    assert approvers(reviews, author="author", author_counts=True) == ["ann", "author"]


def test_rules_by_name_with_teams_users_and_permissions() -> None:
    reqs = [requirement(CONFIG, n) for n in ("prod-owners", "any-writer", "maintainers", "missing")]
    perms = {"ann": "write", "boss": "admin", "carl": "read", "dee": "maintain"}
    teams = {"org/sre": frozenset({"ann", "carl"})}
    results = {r.rule: r for r in evaluate_rules(reqs, ["ann", "carl"], perms, teams)}
    assert not results["prod-owners"].ok and "1 of 2" in results["prod-owners"].detail
    assert "@boss" in results["prod-owners"].detail and "@org/sre" in results["prod-owners"].detail
    assert results["any-writer"].ok and results["any-writer"].detail == "approved by @ann"
    assert not results["maintainers"].ok and "maintain permission" in results["maintainers"].detail
    assert not results["missing"].ok and "no approval rule named `missing`" in results["missing"].detail
    both = {r.rule: r for r in evaluate_rules(reqs, ["ann", "boss", "dee"], perms, teams, author="dee")}
    assert both["prod-owners"].ok and both["prod-owners"].detail == "approved by @ann, @boss"
    assert both["maintainers"].ok  # the author may approve this one, and dee maintains the repo


def test_read_only_reviewers_never_count_by_default() -> None:
    (result,) = evaluate_rules([requirement(CONFIG, "any-writer")], ["carl"], {"carl": "read"}, {})
    assert not result.ok and "write permission" in result.detail
