"""The first handler: one ``gitops-bot`` check run per head sha and one sticky comment per PR."""

from __future__ import annotations

import copy
from typing import Any

from bot.service.context import HandlerContext
from bot.service.dispatch import dispatch_isolated, handlers_for
from bot.service.repos import UnavailableRepoAccess
from handlers import combined_router
from tests.service.conftest import example
from tests.support.github import FakeGitHub, make_event

ROUTER = combined_router(["pull_request"])


def _ctx(delivery: str) -> HandlerContext:
    return HandlerContext(repos=UnavailableRepoAccess(), delivery_id=delivery)


async def _deliver(gh: FakeGitHub, payload: dict[str, Any], delivery: str) -> None:
    failures = await dispatch_isolated(
        ROUTER, make_event("pull_request", payload, delivery), gh, _ctx(delivery)
    )
    assert failures == []


def test_the_combined_router_routes_pull_request_actions() -> None:
    opened = example("pull_request", "opened.payload.json")
    assert [h.__name__ for h in handlers_for(ROUTER, make_event("pull_request", opened))] == [
        "pull_request_changed"
    ]
    labeled = example("pull_request", "labeled.payload.json")
    assert "pull_request_changed" not in [
        h.__name__ for h in handlers_for(ROUTER, make_event("pull_request", labeled))
    ]


async def test_opened_then_retried_then_pushed_gives_one_comment_and_one_run_per_sha() -> None:
    gh = FakeGitHub()
    opened = example("pull_request", "opened.payload.json")
    await _deliver(gh, opened, "d1")
    await _deliver(gh, opened, "d1")  # the same delivery retried
    assert len(gh.check_runs) == 1
    assert len(gh.comments) == 1
    (run,) = gh.check_runs.values()
    sha = opened["pull_request"]["head"]["sha"]
    assert run["head_sha"] == sha and run["name"] == "gitops-bot" and run["conclusion"] == "neutral"
    assert "| `master` ← `changes` |" in run["output"]["summary"]

    pushed = copy.deepcopy(opened)
    pushed["action"] = "synchronize"
    pushed["pull_request"]["head"]["sha"] = "f" * 40
    await _deliver(gh, pushed, "d2")
    assert len(gh.check_runs) == 2  # one per head sha
    (comment,) = gh.comments.values()
    assert comment["body"].startswith("<!-- gitops-bot:sticky -->\n### gitops-bot")
    assert "`ffffffffffff`" in comment["body"]
    assert "| Branches | Head commit |\n| --- | --- |" in comment["body"]
    new_run = max(gh.check_runs.values(), key=lambda r: r["id"])
    assert f"[gitops-bot]({new_run['html_url']})" in comment["body"]


def test_every_handler_module_is_combined_in_one_router() -> None:
    import handlers

    assert "pull_request" in handlers.available()
    opened = make_event("pull_request", example("pull_request", "opened.payload.json"))
    names = {h.__module__ for h in handlers.ROUTER.fetch(opened)}
    assert "handlers.pull_request" in names
    assert names == {
        h.__module__ for name in handlers.available() for h in handlers.ROUTERS[name].fetch(opened)
    }


async def test_run_pr_checks_runs_every_pull_request_handler_again() -> None:
    import dataclasses

    import pytest

    import handlers
    from bot.service.settings import Settings
    from handlers.pull_request import PullRequestChecksFailed, run_pr_checks

    gh = FakeGitHub()
    opened = example("pull_request", "opened.payload.json")
    ctx = _ctx("cmd-1")
    ctx.settings = dataclasses.replace(Settings(webhook_secret=b"x"), handlers=("pull_request",))
    await run_pr_checks(gh, ctx, repo="Codertocat/Hello-World", pr=opened["pull_request"])
    await run_pr_checks(gh, ctx, repo="Codertocat/Hello-World", pr=opened["pull_request"])
    assert len(gh.check_runs) == 1 and len(gh.comments) == 1

    # With every module (here some need git, which this context lacks) the failures are named.
    ctx.settings = None
    if len(handlers.ROUTER.fetch(make_event("pull_request", opened))) > 1:
        with pytest.raises(PullRequestChecksFailed, match=r"check\(s\) failed on Codertocat/Hello-World#2"):
            await run_pr_checks(gh, ctx, repo="Codertocat/Hello-World", pr=opened["pull_request"])
