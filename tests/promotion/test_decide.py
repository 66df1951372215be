"""Table-driven tests of the promotion decisions (bot.domain.promotion.decide): facts in, decisions out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.config import parse_config
from bot.domain.promotion import decide
from bot.domain.promotion.decide import (
    BranchAction,
    HoldChange,
    PrRef,
    PullFacts,
    Record,
    Refusal,
    Standing,
)
from bot.domain.promotion.environments import load_chain
from bot.domain.promotion.plan import History

BOT = "gitops-bot[bot]"
CHAIN = load_chain(
    parse_config(
        """
environments:
  - {name: dev, branch: env/dev}
  - {name: staging, branch: env/staging}
  - {name: prod, branch: env/prod}
"""
    )
)
HISTORY = History(1, "Add a", "dev", "staging", 1, "a" * 40, "cherry-pick")
BRANCH = "gitops-bot/promote/staging/aaaaaaa"
RECORD = Record("promotion", BRANCH, "env/staging", HISTORY, ("b" * 40,), 7)


@pytest.mark.parametrize(
    ("base", "target", "rollback", "expected"),
    [
        ("env/dev", None, False, ("dev", "staging")),
        ("env/dev", "staging", False, ("dev", "staging")),
        ("env/staging", None, False, ("staging", "prod")),
        ("env/dev", "prod", False, "goes to `staging` next"),
        ("env/dev", "dev", False, "already in `dev`"),
        ("env/dev", "qa", False, "no environment `qa`"),
        ("main", None, False, "not an environment branch"),
        ("env/prod", None, False, "last environment"),
        ("env/prod", "staging", False, "nowhere (it is the last environment)"),
        ("env/dev", None, True, "is a rollback"),
    ],
)
def test_choose_target(base: str, target: str | None, rollback: bool, expected: object) -> None:
    got = decide.choose_target(CHAIN, source_pr=5, base=base, target_env=target, is_rollback=rollback)
    if isinstance(expected, tuple):
        assert not isinstance(got, Refusal)
        assert (got[0].name, got[1].name) == expected
    else:
        assert isinstance(got, Refusal) and str(expected) in got.message


OPEN = PrRef(9, "open", False, "u9")
CLOSED = PrRef(8, "closed", False, "u8")
MERGED = PrRef(7, "closed", True, "u7")


@pytest.mark.parametrize(
    ("prs", "explicit", "expected"),
    [
        ([], False, None),
        ([OPEN], False, OPEN),
        ([CLOSED, OPEN], False, OPEN),
        ([MERGED, OPEN], False, "already promoted to `staging` in #7"),
        ([CLOSED], False, "was closed; comment `/promote staging`"),
        ([CLOSED], True, CLOSED),  # /promote reopens it
    ],
)
def test_existing_pr(prs: list[PrRef], explicit: bool, expected: object) -> None:
    got = decide.existing_pr(prs, source_pr=5, env="staging", explicit=explicit)
    if isinstance(expected, str):
        assert isinstance(got, Refusal) and expected in got.message
    else:
        assert got == expected


def test_a_merged_rollback_is_said_as_one() -> None:
    got = decide.existing_pr([MERGED], source_pr=5, env="dev", explicit=True, kind="rollback")
    assert isinstance(got, Refusal) and got.ok and "already rolled back in #7" in got.message


@pytest.mark.parametrize(
    ("current", "built", "trusted", "open_pr", "up_to_date", "expected"),
    [
        ("", "n", False, False, False, BranchAction.PUSH),  # new branch
        ("c", "n", True, True, True, BranchAction.KEEP),  # the bot's, up to date
        ("c", "n", True, True, False, BranchAction.PUSH),  # the bot's, target moved: rebuild
        ("c", "n", False, True, False, BranchAction.KEEP),  # someone else's work: never overwritten
        ("c", "n", False, True, True, BranchAction.KEEP),
        ("c", None, True, True, False, BranchAction.KEEP),  # no longer applies: the open PR keeps it
        ("c", None, False, True, False, BranchAction.KEEP),  # resolved by hand
        ("", None, False, False, False, BranchAction.CONFLICT),
        ("c", None, True, False, False, BranchAction.CONFLICT),  # closed PR: say so on the source
        ("c", "n", False, False, False, BranchAction.PUSH),  # closed PR, explicit /promote: rebuild
    ],
)
def test_branch_action(
    current: str, built: str | None, trusted: bool, open_pr: bool, up_to_date: bool, expected: BranchAction
) -> None:
    got = decide.branch_action(
        current=current, built=built, trusted=trusted, open_pr=open_pr, up_to_date=up_to_date
    )
    assert got is expected


def _pull(**kw: object) -> PullFacts:
    base: dict[str, object] = {
        "number": 7,
        "author": BOT,
        "head_ref": BRANCH,
        "head_sha": "b" * 40,
        "base_ref": "env/staging",
        "record": RECORD,
    }
    return PullFacts(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pull", "expected"),
    [
        (_pull(), Standing.PROMOTION),
        (_pull(record=None), Standing.NONE),  # a body marker, label or branch name is not a record
        (_pull(author="mallory"), Standing.NONE),  # opened by a person
        (_pull(author="other-app[bot]"), Standing.NONE),  # opened by another App
        (_pull(head_sha="e" * 40), Standing.LOST),  # someone else pushed
        (_pull(number=8), Standing.NONE),  # the record is of another PR
        (_pull(base_ref="env/prod"), Standing.NONE),  # retargeted
        (_pull(head_ref="gitops-bot/promote/staging/bbbbbbb"), Standing.NONE),
        (_pull(record=Record("rollback", BRANCH, "env/staging", None, ("b" * 40,), 7)), Standing.ROLLBACK),
        (_pull(record=Record("promotion", BRANCH, "env/staging", HISTORY, ("b" * 40,))), Standing.PROMOTION),
        # an upgrade step's record only names the bot's commits: the PR is reviewed like any
        (_pull(record=Record("upgrade", BRANCH, "env/staging", None, ("b" * 40,))), Standing.NONE),
    ],
)
def test_standing(pull: PullFacts, expected: Standing) -> None:
    assert decide.standing(pull, BOT) is expected


def test_lost_standing_says_why_and_what_to_do() -> None:
    text = decide.lost_standing_text("e" * 40, ("b" * 40,))
    assert "`eeeeeee`" in text and "`bbbbbbb`" in text
    assert "approval rules apply" in text and "will not merge it" in text and "/promote" in text


def test_records_round_trip_and_remember_pushes() -> None:
    rec = RECORD.with_push("c" * 40).with_push("b" * 40).with_number(9)
    assert rec.pushed == ("c" * 40, "b" * 40) and rec.number == 9
    assert Record.from_json(rec.to_json()) == rec
    assert Record.from_json(None) is None
    assert Record.from_json("{not json") is None
    assert Record.from_json('{"kind": "promotion-ish", "branch": "x", "base": "y"}') is None
    many = RECORD
    for i in range(decide.MAX_PUSHED + 5):
        many = many.with_push(f"{i:040x}")
    assert len(many.pushed) == decide.MAX_PUSHED and many.pushed[-1] == f"{decide.MAX_PUSHED + 4:040x}"


def test_records_remember_every_commit_the_bot_made() -> None:
    made = ("1" * 40, "2" * 40)
    rec = RECORD.with_push("b" * 40, made).with_push("c" * 40, ("c" * 40,))
    assert rec.made == ("1" * 40, "2" * 40, "b" * 40, "c" * 40) and rec.pushed == ("b" * 40, "c" * 40)
    assert Record.from_json(rec.to_json()) == rec
    upgrade = Record("upgrade", BRANCH, "env/staging").with_push("d" * 40)
    assert Record.from_json(upgrade.to_json()) == upgrade
    many = RECORD
    for i in range(decide.MAX_MADE + 5):
        many = many.with_push(f"{i:040x}")
    assert len(many.made) == decide.MAX_MADE and many.made[-1] == f"{decide.MAX_MADE + 4:040x}"


@pytest.mark.parametrize(
    ("pull", "expected"),
    [
        (_pull(), {"b" * 40}),
        (_pull(head_sha="e" * 40), {"b" * 40}),  # someone pushed on top: theirs is not the bot's
        (_pull(record=None), set()),
        (_pull(author="mallory"), set()),  # a person's PR from the bot's branch
        (_pull(number=8), set()),
        (_pull(base_ref="env/prod"), set()),
        (_pull(head_ref="gitops-bot/promote/staging/bbbbbbb"), set()),
        (_pull(record=RECORD.with_push("b" * 40, ("a" * 40,))), {"a" * 40, "b" * 40}),
    ],
)
def test_bot_made(pull: PullFacts, expected: set[str]) -> None:
    assert decide.bot_made(pull, BOT) == expected


NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("enabled", "needs_health", "merged_ago", "soak", "expected"),
    [
        (True, True, timedelta(minutes=5), timedelta(minutes=30), True),
        (True, True, timedelta(minutes=45), timedelta(minutes=30), False),  # after the soak
        (True, True, timedelta(days=3), timedelta(0), True),  # no soak: any time
        (False, True, timedelta(minutes=5), timedelta(minutes=30), False),  # rollback_on_red off
        (True, False, timedelta(minutes=5), timedelta(minutes=30), False),  # no health to turn red
        (True, True, None, timedelta(minutes=30), False),  # merge time unknown
    ],
)
def test_red_window(
    enabled: bool, needs_health: bool, merged_ago: timedelta | None, soak: timedelta, expected: bool
) -> None:
    merged_at = None if merged_ago is None else NOW - merged_ago
    got = decide.in_red_window(
        enabled=enabled, needs_health=needs_health, merged_at=merged_at, soak=soak, now=NOW
    )
    assert got is expected


@pytest.mark.parametrize(
    ("merged", "closed", "expected"),
    [
        (True, True, "#7 is merged."),
        (False, True, "`/promote staging` on #1 reopens it"),
        (False, False, None),
    ],
)
def test_closed_outcome(merged: bool, closed: bool, expected: str | None) -> None:
    got = decide.closed_outcome(number=7, merged=merged, closed=closed, history=HISTORY)
    assert got == expected if expected is None else expected in str(got)


@pytest.mark.parametrize(
    ("body", "block", "expected"),
    [
        (
            "### Gates\n\nrest",
            "- [x] a",
            "### Gates\n\n<!-- gitops-bot:gates -->\n- [x] a\n<!-- /gitops-bot:gates -->rest",
        ),
        (
            "x <!-- gitops-bot:gates -->\nold\n<!-- /gitops-bot:gates --> y",
            "new",
            "x <!-- gitops-bot:gates -->\nnew\n<!-- /gitops-bot:gates --> y",
        ),
        ("no gates heading", "b", "no gates heading"),
    ],
)
def test_with_gates(body: str, block: str, expected: str) -> None:
    assert decide.with_gates(body, block) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<!-- gitops-bot:gates -->\n- [ ] x\n<!-- /gitops-bot:gates -->", "- [ ] x"),
        ("<!-- /gitops-bot:gates --> <!-- gitops-bot:gates -->", None),  # out of order
        ("nothing", None),
    ],
)
def test_gates_block(body: str, expected: str | None) -> None:
    assert decide.gates_block(body) == expected


@pytest.mark.parametrize(
    ("action", "sender", "may", "expected"),
    [
        ("labeled", "tia", False, HoldChange.HOLD),  # anyone who can label may hold
        ("unlabeled", "carol", True, HoldChange.RELEASE),  # write access: the same as /unhold
        ("unlabeled", "tia", False, HoldChange.RESTORE),  # triage: put back
        ("unlabeled", BOT, False, HoldChange.NOTHING),  # the bot's own /unhold
        ("labeled", BOT, False, HoldChange.NOTHING),
    ],
)
def test_hold_label_change(action: str, sender: str, may: bool, expected: HoldChange) -> None:
    got = decide.hold_label_change(action=action, sender=sender, bot_login=BOT, may_release=may)
    assert got is expected


def test_hold_restored_text() -> None:
    text = decide.hold_restored_text("tia", "gitops-bot/hold", "triage")
    assert text.startswith("@tia") and "put back" in text and "*triage*" in text and "/unhold" in text
