"""Approval gates by rule name, decided by the governance engine with promotion defaults."""

from __future__ import annotations

from bot.domain.governance.approvals import ApprovalFacts, Review
from bot.domain.promotion.approvals import approval_results, promotion_rules_config

HEAD, OLD = "h" * 40, "o" * 40
CONFIG = {
    "approvals": {
        "rules": [
            {
                "name": "prod-owners",
                "paths": ["clusters/prod/**"],
                "require": {"count": 2, "teams": ["org/sre"]},
            },
            {"name": "any-writer", "environments": ["prod"]},
            {"name": "maintainers", "require": {"min_permission": "maintain"}, "author_can_approve": True},
        ]
    }
}
PERMS = {"ann": "write", "boss": "admin", "carl": "read", "dee": "maintain"}


def facts(*reviews: Review, trees: dict[str, str] | None = None) -> ApprovalFacts:
    return ApprovalFacts(
        author="dee",
        head_sha=HEAD,
        head_tree="T",
        base_ref="env/prod",
        changed_paths=(),
        reviews=reviews,
        trees=trees or {HEAD: "T", OLD: "T-old"},
        team_members={"org/sre": frozenset({"ann", "boss"})},
        permissions=PERMS,
    )


def approve(user: str, commit: str = HEAD) -> Review:
    return Review(user, "APPROVED", commit)


def test_named_rules_ignore_paths_and_default_to_write_permission() -> None:
    scoped, missing = promotion_rules_config(CONFIG, ["prod-owners", "any-writer", "nope"])
    assert missing == ["nope"]
    rules = scoped["approvals"]["rules"]
    assert [r["name"] for r in rules] == ["prod-owners", "any-writer"]
    assert all("paths" not in r and "environments" not in r for r in rules)
    assert rules[1]["require"]["min_permission"] == "write"
    assert scoped["approvals"]["codeowners"] is False


def test_rules_by_name() -> None:
    names = ["prod-owners", "any-writer", "maintainers", "missing"]
    results = {r.rule: r for r in approval_results(names, CONFIG, facts(approve("ann"), approve("carl")))}
    assert not results["prod-owners"].ok
    assert (
        results["prod-owners"].detail == "1 more from @org/sre"
    )  # write permission is the default bar, not repeated
    assert (
        results["any-writer"].ok and results["any-writer"].detail == "approved by @ann"
    )  # carl is read-only
    assert not results["maintainers"].ok
    assert not results["missing"].ok and "no approval rule named `missing`" in results["missing"].detail
    both = {
        r.rule: r
        for r in approval_results(names, CONFIG, facts(approve("ann"), approve("boss"), approve("dee")))
    }
    assert both["prod-owners"].ok and both["prod-owners"].detail == "approved by @ann, @boss"
    assert both["maintainers"].ok  # the author may approve this rule, and dee maintains the repository


def test_approvals_before_a_push_that_changed_the_tree_do_not_count() -> None:
    (result,) = approval_results(["any-writer"], CONFIG, facts(approve("ann", OLD)))
    assert not result.ok and "@ann" in result.detail


def test_changes_requested_blocks() -> None:
    reviews = (approve("ann"), Review("boss", "CHANGES_REQUESTED", HEAD))
    (result,) = approval_results(["any-writer"], CONFIG, facts(*reviews))
    assert not result.ok and "changes requested by @boss" in result.detail
