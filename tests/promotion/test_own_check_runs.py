"""The bot's own finished PR checks are no health signal: no promotion PR listing for them."""

from __future__ import annotations

from typing import Any

from bot.service.context import HandlerContext
from handlers.promotion import on_check_run
from tests.support.github import FakeGitHub, make_event

REPO = {"full_name": "acme/fleet", "name": "fleet", "owner": {"login": "acme"}}
OPEN_PULLS = "/repos/acme/fleet/pulls?state=open&per_page=100"
CLOSED_PULLS = "/repos/acme/fleet/pulls?state=closed&sort=updated&direction=desc&per_page=30"


def run_event(slug: str, head_ref: str, name: str = "gitops-bot/validate") -> Any:
    pr = {"number": 3, "head": {"ref": head_ref, "sha": "a" * 40}, "base": {"ref": "env/dev"}}
    run = {"name": name, "head_sha": "a" * 40, "app": {"slug": slug}, "pull_requests": [pr]}
    return make_event("check_run", {"action": "completed", "check_run": run, "repository": REPO})


def ctx() -> HandlerContext:
    return HandlerContext(repos=None)  # type: ignore[arg-type]  # never reached in these cases


async def test_own_check_on_a_cluster_request_is_skipped_without_a_call() -> None:
    gh = FakeGitHub()
    await on_check_run(run_event("gitops-bot", "request/payments"), gh, ctx())
    assert gh.calls == []


async def test_own_check_on_a_promotion_pr_and_foreign_checks_are_still_evaluated() -> None:
    for event in (
        run_event("gitops-bot", "gitops-bot/promote/staging/abcdef1"),
        run_event("argo-cd", "request/payments", name="argocd/app-dev"),
    ):
        gh = FakeGitHub(responses={("GET", OPEN_PULLS): [], ("GET", CLOSED_PULLS): []})
        await on_check_run(event, gh, ctx())
        assert [c.path for c in gh.calls] == [OPEN_PULLS, CLOSED_PULLS]
