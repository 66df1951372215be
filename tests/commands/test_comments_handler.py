"""The issue_comment handler against a recording GitHub: permissions, reactions, edits, runners."""

from __future__ import annotations

from typing import Any

import pytest

from bot.domain.help import COMMANDS
from bot.domain.labels import HOLD_LABEL, PROMOTION_LABEL, STICKY_MARKER
from handlers.commands import RUNNERS
from handlers.comments import REPLY_MARKER, router
from tests.commands.conftest import (
    API,
    BOT,
    FakeAPIs,
    Outcome,
    comment_payload,
    make_ctx,
    pr_json,
    record_promotion,
    responses,
)
from tests.support.github import FakeGitHub, make_event
from tests.support.store import StateStore

REACTIONS = f"{API}/issues/comments/4242/reactions"


async def deliver(gh: FakeGitHub, payload: dict[str, Any], store: StateStore | None = None) -> None:
    await router.dispatch(make_event("issue_comment", payload), gh, make_ctx(store))


def reactions(gh: FakeGitHub) -> list[str]:
    return [c.body["content"] for c in gh.calls if c.method == "POST" and c.path == REACTIONS]


def replies(gh: FakeGitHub) -> list[str]:
    return [c.body["body"] for c in gh.calls if c.method == "POST" and c.path == f"{API}/issues/7/comments"]


def label_writes(gh: FakeGitHub) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in gh.writes() if "/labels" in c.path]


def test_every_command_has_one_runner() -> None:
    assert set(RUNNERS) == set(COMMANDS)


@pytest.mark.parametrize(
    ("role", "permission"), [("admin", None), ("maintain", None), ("write", None), ("deploy", "write")]
)
async def test_writers_may_command(role: str, permission: str | None, apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses(role=role, permission=permission))
    await deliver(gh, comment_payload("/hold"))
    assert label_writes(gh) == [("POST", f"{API}/issues/7/labels")]
    assert reactions(gh) == ["eyes", "+1"]


@pytest.mark.parametrize("role", ["triage", "read", None])
async def test_others_get_a_polite_reply_and_nothing_runs(role: str | None, apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses(role=role))
    await deliver(gh, comment_payload("/promote prod"))
    assert apis.calls == []
    assert label_writes(gh) == []
    [text] = replies(gh)
    assert text.startswith("@alice `/promote prod`")
    assert "Only people with write, maintain or admin permission" in text
    assert f"*{role or 'none'}*" in text
    assert "ask a maintainer" in text
    assert reactions(gh) == ["eyes", "-1"]


async def test_allowed_team_member_may_command(apis: FakeAPIs) -> None:
    canned = responses(role="read", config="commands:\n  allowed_teams: [acme/on-call]\n")
    canned[("GET", "/orgs/acme/teams/on-call/memberships/alice")] = {"state": "active", "role": "member"}
    gh = FakeGitHub(canned)
    await deliver(gh, comment_payload("/rollback"))
    # not merged: the runner refuses, but it did run (the permission check passed)
    assert "not merged" in replies(gh)[0]
    assert reactions(gh) == ["eyes", "-1"]


async def test_pending_team_membership_is_not_enough(apis: FakeAPIs) -> None:
    canned = responses(role="read", config="commands:\n  allowed_teams: [acme/on-call, acme/sre]\n")
    canned[("GET", "/orgs/acme/teams/on-call/memberships/alice")] = {"state": "pending"}
    canned[("GET", "/orgs/acme/teams/sre/memberships/alice")] = (404, {"message": "Not Found"})
    gh = FakeGitHub(canned)
    await deliver(gh, comment_payload("/hold"))
    assert label_writes(gh) == []
    assert "Only people with write" in replies(gh)[0]


async def test_eyes_comes_before_everything_else(apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses())
    await deliver(gh, comment_payload("/hold"))
    first_write = gh.writes()[0]
    assert (first_write.path, first_write.body) == (REACTIONS, {"content": "eyes"})
    assert gh.writes()[-1].body == {"content": "+1"}


async def test_hold_labels_and_quotes_the_reason_safely(apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses())
    await deliver(gh, comment_payload("/hold ask @bob <script>alert(1)</script>"))
    [label] = [c for c in gh.writes() if c.path.endswith("/labels")]
    assert label.body == {"labels": [HOLD_LABEL]}
    [text] = replies(gh)
    assert text.startswith("@alice ")
    assert "@bob" not in text
    assert "<script>" not in text.split("\n", 1)[1]
    assert "&lt;script&gt;" in text
    assert "`/unhold`" in text
    assert REPLY_MARKER.format(comment_id=4242) in text


async def test_unhold_removes_the_label(apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses())
    await deliver(gh, comment_payload("/unhold"))
    assert label_writes(gh) == [("DELETE", f"{API}/issues/7/labels/gitops-bot%2Fhold")]
    assert "Hold released" in replies(gh)[0]
    assert reactions(gh) == ["eyes", "+1"]


async def test_unhold_without_hold_says_so(apis: FakeAPIs) -> None:
    canned = responses()
    canned[("DELETE", f"{API}/issues/7/labels/gitops-bot%2Fhold")] = (
        404,
        {"message": "Label does not exist"},
    )
    gh = FakeGitHub(canned)
    await deliver(gh, comment_payload("/unhold"))
    assert "was not on hold" in replies(gh)[0]
    assert reactions(gh) == ["eyes", "+1"]


async def test_hold_on_a_promotion_pr_reevaluates_its_gates(apis: FakeAPIs) -> None:
    pr = pr_json(labels=[PROMOTION_LABEL], head_ref="gitops-bot/promote/staging/abc1234", user=BOT)
    store = StateStore()
    await record_promotion(store, pr, origin=3)
    gh = FakeGitHub(responses(pr=pr))
    await deliver(gh, comment_payload("/hold"), store)
    assert apis.calls == [("evaluate_promotion", {"repo": "Codertocat/Hello-World", "promotion_pr": 7})]
    assert "Promotion gates: all gates hold" in replies(gh)[0]


@pytest.mark.parametrize(
    ("body", "env"), [("/promote staging", "staging"), ("/promote", None), ("/PROMOTE Prod", "Prod")]
)
async def test_promote_calls_the_promotion_api(body: str, env: str | None, apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses(pr=pr_json(state="closed", merged=True)))
    await deliver(gh, comment_payload(body))
    assert apis.calls == [
        ("promote_pr", {"repo": "Codertocat/Hello-World", "source_pr": 7, "target_env": env})
    ]
    [text] = replies(gh)
    assert "Opened the promotion to staging." in text
    assert "https://x/pr/8" in text
    assert reactions(gh) == ["eyes", "+1"]


async def test_failed_promotion_reacts_minus_one(apis: FakeAPIs) -> None:
    apis.outcome = Outcome(
        False, "Conflict in `clusters/prod/payments.yaml`; resolve it and comment `/promote prod`."
    )
    gh = FakeGitHub(responses(pr=pr_json(state="closed", merged=True)))
    await deliver(gh, comment_payload("/promote prod"))
    assert "Conflict in `clusters/prod/payments.yaml`" in replies(gh)[0]
    assert reactions(gh) == ["eyes", "-1"]


async def test_rollback_calls_the_promotion_api_with_the_reason(apis: FakeAPIs) -> None:
    apis.outcome = Outcome(True, "Opened the revert PR.", "https://x/pr/9")
    gh = FakeGitHub(responses(pr=pr_json(state="closed", merged=True)))
    await deliver(gh, comment_payload("/rollback pods crash-looping"))
    assert apis.calls == [
        ("rollback_pr", {"repo": "Codertocat/Hello-World", "pr_number": 7, "reason": "pods crash-looping"})
    ]
    assert "https://x/pr/9" in replies(gh)[0]


async def test_rollback_without_reason_names_who_asked(apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses(pr=pr_json(state="closed", merged=True)))
    await deliver(gh, comment_payload("/rollback"))
    assert apis.calls[0][1]["reason"] == "requested by @alice with /rollback"


async def test_rollback_of_an_open_pr_is_refused(apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses())
    await deliver(gh, comment_payload("/rollback"))
    assert apis.calls == []
    assert "not merged" in replies(gh)[0]


async def test_runner_error_becomes_a_clear_reply(apis: FakeAPIs) -> None:
    apis.error = RuntimeError("push failed for https://x-access-token:ghs_abcdefghijklmnop1234@github.com")
    gh = FakeGitHub(responses(pr=pr_json(state="closed", merged=True)))
    await deliver(gh, comment_payload("/promote staging"))
    [text] = replies(gh)
    assert "did not finish" in text
    assert "RuntimeError" in text
    assert "ghs_" not in text
    assert "[redacted]" in text
    assert "d-1" in text
    assert reactions(gh) == ["eyes", "confused"]


@pytest.mark.parametrize("command", ["/diff", "/validate"])
async def test_diff_and_validate_rerun_the_checks(command: str, apis: FakeAPIs) -> None:
    sticky = {
        "id": 1,
        "body": f"{STICKY_MARKER}\n## Diff",
        "html_url": "https://x/pull/7#issuecomment-1",
        "user": BOT,
    }
    gh = FakeGitHub(responses(comments=[sticky]))
    await deliver(gh, comment_payload(command))
    assert apis.names() == ["run_pr_checks"]
    kwargs = apis.calls[0][1]
    assert kwargs["repo"] == "Codertocat/Hello-World"
    assert kwargs["pr"]["number"] == 7
    text = replies(gh)[0]
    assert "`aaaaaaa`" in text
    if command == "/diff":
        assert "[the diff comment](https://x/pull/7#issuecomment-1)" in text
    else:
        assert "[Checks tab](https://github.com/Codertocat/Hello-World/pull/7/checks)" in text


async def test_validate_on_a_closed_pr_is_refused(apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses(pr=pr_json(state="closed")))
    await deliver(gh, comment_payload("/validate"))
    assert apis.calls == []
    assert "This PR is closed" in replies(gh)[0]


async def test_unknown_command_gets_help(apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses(role="read"))
    await deliver(gh, comment_payload("/deploy"))
    [text] = replies(gh)
    assert "I don't know the command `/deploy`" in text
    assert "| `/rollback [reason]` |" in text
    assert reactions(gh) == ["eyes", "confused"]


async def test_anyone_may_ask_for_help(apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses(role=None))
    await deliver(gh, comment_payload("/help"))
    assert "| Command | What it does |" in replies(gh)[0]
    assert not any("permission" in c.path for c in gh.calls)


async def test_disabled_command_is_refused_by_config(apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses(config="version: 1\ncommands:\n  enabled: [diff, validate]\n"))
    await deliver(gh, comment_payload("/rollback"))
    assert apis.calls == []
    assert "turned off" in replies(gh)[0]
    config_reads = [c.path for c in gh.calls if "/contents/" in c.path]
    assert config_reads == [f"{API}/contents/.github/gitops-bot.yml?ref=dev"]


async def test_broken_config_falls_back_to_defaults(apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses(config="commands: [not, a, mapping\n"))
    await deliver(gh, comment_payload("/hold"))
    assert label_writes(gh) == [("POST", f"{API}/issues/7/labels")]


@pytest.mark.parametrize(
    "payload",
    [
        comment_payload("/hold", login="gitops-bot[bot]", sender_type="Bot"),
        comment_payload("/hold", on_pr=False),
        comment_payload("```\n/hold\n```"),
        comment_payload("> /hold"),
        comment_payload("thanks!"),
    ],
    ids=["own-comment", "issue-not-pr", "code-block", "quote", "prose"],
)
async def test_ignored_comments_cause_no_call(payload: dict[str, Any], apis: FakeAPIs) -> None:
    gh = FakeGitHub({})
    await deliver(gh, payload)
    assert gh.calls == []


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("/hold", "/hold"),
        ("/hold  ", "/Hold"),
        ("/promote staging", "/promote   staging\nthanks"),
        ("x", "y"),
    ],
)
async def test_edit_keeping_the_command_does_nothing(before: str, after: str, apis: FakeAPIs) -> None:
    gh = FakeGitHub({})
    await deliver(gh, comment_payload(after, action="edited", before=before))
    assert gh.calls == []


async def test_edit_without_body_change_does_nothing(apis: FakeAPIs) -> None:
    gh = FakeGitHub({})
    await deliver(gh, comment_payload("/hold", action="edited", before=None))
    assert gh.calls == []


@pytest.mark.parametrize(
    ("before", "after"), [("/promote staging", "/promote prod"), ("typo", "/promote prod")]
)
async def test_edit_changing_the_command_runs_it(before: str, after: str, apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses(pr=pr_json(state="closed", merged=True)))
    await deliver(gh, comment_payload(after, action="edited", before=before))
    assert apis.calls == [
        ("promote_pr", {"repo": "Codertocat/Hello-World", "source_pr": 7, "target_env": "prod"})
    ]


async def test_reply_is_updated_in_place_when_run_again(apis: FakeAPIs) -> None:
    marker = REPLY_MARKER.format(comment_id=4242)
    earlier = {
        "id": 99,
        "body": f"@alice `/promote staging`\n\nold\n\n{marker}",
        "html_url": "https://x#99",
        "user": BOT,
    }
    gh = FakeGitHub(responses(pr=pr_json(state="closed", merged=True), comments=[earlier]))
    await deliver(gh, comment_payload("/promote prod", action="edited", before="/promote staging"))
    assert replies(gh) == []
    [patch] = [c for c in gh.writes() if c.method == "PATCH"]
    assert patch.path == f"{API}/issues/comments/99"
    assert "Opened the promotion to staging." in patch.body["body"]
    listing = [c.path for c in gh.calls if c.path.startswith(f"{API}/issues/7/comments")]
    assert listing == [f"{API}/issues/7/comments?per_page=100&since=2019-05-15T15%3A20%3A21Z"]


async def test_same_reply_is_not_written_twice(apis: FakeAPIs) -> None:
    gh = FakeGitHub(responses())
    await deliver(gh, comment_payload("/hold"))
    [body] = replies(gh)
    again = FakeGitHub(responses(comments=[{"id": 5, "body": body, "user": BOT}]))
    await deliver(again, comment_payload("/hold"))
    assert replies(again) == []
    assert not [c for c in again.writes() if c.method == "PATCH"]


async def test_overlong_answer_is_cut_to_fit_a_comment(apis: FakeAPIs) -> None:
    apis.outcome = Outcome(False, "conflict in clusters/x.yaml\n" * 5000)
    gh = FakeGitHub(responses(pr=pr_json(state="closed", merged=True)))
    await deliver(gh, comment_payload("/promote prod"))
    [text] = replies(gh)
    assert len(text) < 65_536
    assert "cut here" in text
    assert text.endswith(REPLY_MARKER.format(comment_id=4242))


async def promotion_list(store: StateStore) -> list[dict[str, Any]]:
    """Open PRs: the bot's promotions of #7 and #70, and a person's PR titled like a promotion of #7."""
    mine = pr_json(12, head_ref="gitops-bot/promote/staging/abc1234", user=BOT)
    other = pr_json(13, head_ref="gitops-bot/promote/staging/def5678", user=BOT)
    forged = pr_json(14, head_ref="gitops-bot/promote/staging/0000000")
    await record_promotion(store, mine, origin=7)
    await record_promotion(store, other, origin=70)
    return [
        {**mine, "title": "Promote #7 to staging: Add cluster"},
        {**other, "title": "Promote #70 to staging: Other"},
        {**forged, "title": "Promote #7 to staging: not the bot's"},
    ]


async def test_hold_on_a_merged_pr_holds_its_promotion(apis: FakeAPIs) -> None:
    canned = responses(pr=pr_json(state="closed", merged=True))
    store = StateStore()
    canned[("GET", f"{API}/pulls")] = await promotion_list(store)
    gh = FakeGitHub(canned)
    await deliver(gh, comment_payload("/hold"), store)
    assert label_writes(gh) == [("POST", f"{API}/issues/7/labels"), ("POST", f"{API}/issues/12/labels")]
    assert "this PR and its promotion #12" in replies(gh)[0]


async def test_hold_on_a_merged_pr_without_promotion_says_so(apis: FakeAPIs) -> None:
    canned = responses(pr=pr_json(state="closed", merged=True))
    canned[("GET", f"{API}/pulls")] = []
    gh = FakeGitHub(canned)
    await deliver(gh, comment_payload("/hold"))
    assert label_writes(gh) == [("POST", f"{API}/issues/7/labels")]
    assert "no promotion PR open right now" in replies(gh)[0]


async def test_unhold_on_a_merged_pr_releases_its_promotion(apis: FakeAPIs) -> None:
    canned = responses(pr=pr_json(state="closed", merged=True))
    store = StateStore()
    canned[("GET", f"{API}/pulls")] = await promotion_list(store)
    canned[("DELETE", f"{API}/issues/7/labels/gitops-bot%2Fhold")] = (
        404,
        {"message": "Label does not exist"},
    )
    gh = FakeGitHub(canned)
    await deliver(gh, comment_payload("/unhold"), store)
    assert label_writes(gh) == [
        ("DELETE", f"{API}/issues/7/labels/gitops-bot%2Fhold"),
        ("DELETE", f"{API}/issues/12/labels/gitops-bot%2Fhold"),
    ]
    assert apis.calls == [("evaluate_promotion", {"repo": "Codertocat/Hello-World", "promotion_pr": 12})]
    assert "Also released its promotion #12." in replies(gh)[0]
