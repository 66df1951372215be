"""Golden files for the comments a person reads; regenerate with ``UPDATE_GOLDEN=1``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from handlers.comments import router
from tests.commands.conftest import API, FakeAPIs, Outcome, comment_payload, make_ctx, pr_json, responses
from tests.support.github import FakeGitHub, make_event

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "commands" / "golden"

CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("unknown-command", "/deploy prod", {}),
    ("usage-error", "/promote staging prod", {}),
    ("denied", "/promote prod", {"role": "triage"}),
    ("hold", "/hold waiting for @carol's sign-off <b>today</b>", {}),
    ("unhold", "/unhold", {}),
    ("promote", "/promote staging", {"pr": pr_json(state="closed", merged=True)}),
    ("crash", "/rollback", {"pr": pr_json(state="closed", merged=True), "error": True}),
    ("help", "/help", {}),
    ("upgrade-usage", "/upgrade Prod_Cluster to latest", {}),
]


@pytest.mark.parametrize(("name", "body", "options"), CASES, ids=[c[0] for c in CASES])
async def test_reply_matches_golden(name: str, body: str, options: dict[str, Any], apis: FakeAPIs) -> None:
    if options.pop("error", False):
        apis.error = ValueError("branch gitops-bot/revert/7 is protected")
    apis.outcome = Outcome(
        True,
        "Opened #8 to promote #7 to `staging`; its gates are in the `gitops-bot/promotion` check.",
        "https://github.com/Codertocat/Hello-World/pull/8",
    )
    gh = FakeGitHub(responses(**options))
    await router.dispatch(make_event("issue_comment", comment_payload(body)), gh, make_ctx())
    [reply] = [c.body["body"] for c in gh.writes() if c.path == f"{API}/issues/7/comments"]
    path = GOLDEN / f"{name}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reply, encoding="utf-8")
    assert reply == path.read_text(encoding="utf-8"), f"{path.name} differs; UPDATE_GOLDEN=1 to accept"
