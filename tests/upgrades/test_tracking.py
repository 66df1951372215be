"""`/upgrade` arguments and roles, the tracking issue (trusted only from the bot), the calendar."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from bot.domain.upgrades.campaign import opened
from bot.domain.upgrades.command import UpgradeRequest, min_role, parse_upgrade, role_allows
from bot.domain.upgrades.plan import DueUpgrade
from bot.domain.upgrades.tracking import (
    LABEL,
    body,
    calendar_choice,
    running,
    step_branch,
    tracked,
    with_state,
)
from tests.upgrades.test_campaign import blue_green

BOT = "gitops-bot[bot]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("shop-a", UpgradeRequest("shop-a")),
        ("shop-a to 1.35", UpgradeRequest("shop-a", "1.35")),
        ("shop-a to v1.35 blue-green", UpgradeRequest("shop-a", "1.35", "blue-green")),
        ("shop-a in-place to 1.31", UpgradeRequest("shop-a", "1.31", "in-place")),
        ("shop-a BLUE-GREEN", UpgradeRequest("shop-a", "", "blue-green")),
    ],
)
def test_parse_upgrade(text: str, expected: UpgradeRequest) -> None:
    assert parse_upgrade(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "Which cluster?"),
        ("Shop_A", "is not a cluster name"),
        ("shop-a to latest", "is not a Kubernetes minor version"),
        ("shop-a to 1.31 to 1.32", "is not a Kubernetes minor version"),
        ("shop-a sideways", "I don't understand `sideways`"),
        ("shop-a in-place blue-green", "I don't understand `blue-green`"),
        ("shop-a to", "I don't understand `to`"),
        ("<b>x</b>", "`<b>x</b>` is not a cluster name"),
    ],
)
def test_parse_upgrade_usage(text: str, says: str) -> None:
    answer = parse_upgrade(text)
    assert isinstance(answer, str) and says in answer and "Usage:" in answer


@pytest.mark.parametrize(
    ("env", "section", "role", "allowed"),
    [
        ("dev", None, "write", True),
        ("prod", None, "write", False),
        ("prod", None, "maintain", True),
        ("production", {}, "admin", True),
        ("staging", {"min_role": {"staging": "admin"}}, "maintain", False),
        ("prod", {"min_role": {"prod": "write"}}, "write", True),
        ("dev", None, "triage", False),
        ("dev", None, "none", False),
    ],
)
def test_min_role(env: str, section: dict[str, Any] | None, role: str, allowed: bool) -> None:
    assert role_allows(role, min_role(env, section)) is allowed


def issue(number: int, text: str, *, by: str = BOT, kind: str = "Bot", state: str = "open") -> dict[str, Any]:
    return {
        "number": number,
        "state": state,
        "body": text,
        "html_url": f"https://github.com/o/r/issues/{number}",
        "user": {"login": by, "type": kind},
        "labels": [{"name": LABEL}],
    }


def test_state_is_trusted_only_in_the_bots_own_issue() -> None:
    c = opened(blue_green(), 12, "abc123")
    text = body(c.cluster, c.target, "plan", c, started_by="bob")
    found = tracked(
        [
            issue(3, text),
            issue(4, text, by="mallory", kind="User"),  # a person copied the markers
            issue(5, text, by=BOT, kind="User"),  # a user named like the bot
            {**issue(6, text), "pull_request": {}},  # a PR is not a tracking issue
            issue(7, "no markers here"),
        ],
        BOT,
    )
    assert [t.number for t in found] == [3]
    assert found[0].campaign == c and (found[0].cluster, found[0].target) == ("shop-a", "1.35")
    assert running(found, "shop-a") is found[0]
    assert running(found, "shop-b") is None


def test_body_round_trips_the_state_and_keeps_the_plan() -> None:
    c = blue_green()
    first = body(c.cluster, c.target, "THE PLAN", None, why="EKS standard support for 1.33 ends soon.")
    assert "`/upgrade shop-a`" in first and "gitops-bot:upgrade-state" not in first
    later = with_state(first, opened(c, 12, "abc"), started_by="bob")
    assert "THE PLAN" in later and "EKS standard support" in later and "started by @bob" in later
    assert "- [ ] Create shop-b" in later and "(#12)" in later
    [t] = tracked([issue(1, later)], BOT)
    assert t.campaign == opened(c, 12, "abc")
    again = with_state(later, t.campaign)
    assert again == later  # idempotent: the same state writes the same body


def due(cluster: str, days: int = 30) -> DueUpgrade:
    return DueUpgrade(cluster, "prod", (1, 33), date(2027, 1, 1), days, (1, 35))


def test_calendar_opens_once_never_reopens_and_is_capped() -> None:
    c = blue_green()
    closed = tracked([issue(1, body("shop-a", "1.35", "p", None), state="closed")], BOT)
    assert calendar_choice([due("shop-a")], closed, 3) == []  # a person closed it: never again
    other_target = tracked([issue(1, body("shop-a", "1.34", "p", None), state="closed")], BOT)
    assert [d.cluster for d in calendar_choice([due("shop-a")], other_target, 3)] == ["shop-a"]
    busy = tracked([issue(2, body("shop-a", "1.34", "p", c))], BOT)
    assert calendar_choice([due("shop-a"), due("x")], busy, 3) == [due("x")]  # one campaign per cluster
    many = [due(f"c{i}", i) for i in range(5)]
    assert [d.cluster for d in calendar_choice(many, busy, 3)] == ["c0", "c1"]  # one open counts
    assert calendar_choice(many, [], 0) == []


@pytest.mark.parametrize("name", ["shop-a", "Prod_Use1", "eks.prod-1", "a<b>--c d"])
def test_any_cluster_name_keys_its_issue_so_the_calendar_never_opens_it_twice(name: str) -> None:
    text = body(name, "1.35", "p", None)
    [t] = tracked([issue(1, text)], BOT)
    assert t.cluster == name and running([t], name) is t
    assert "-->" not in text.split("gitops-bot:upgrade-key", 1)[1].split(" -->", 1)[0]
    assert calendar_choice([due(name)], [t], 3) == []  # already open: not again


def test_step_branches_are_per_step_and_kind() -> None:
    c = blue_green()
    assert step_branch(c, 0) == "gitops-bot/upgrade/shop-a-1.35/1-create-green"
    assert step_branch(c, 2, rollback=True) == "gitops-bot/upgrade/shop-a-1.35/3-rollback"
