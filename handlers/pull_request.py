"""Pull request opened, synchronized or reopened: the ``gitops-bot`` check run and sticky comment.

This is the entry point later features fill in (rendered diff, validation, policy). Today it
records that the bot saw the head commit: one ``gitops-bot`` check run on the head sha and one
sticky comment, both updated in place when the delivery is retried or the PR is pushed again.
"""

from __future__ import annotations

from typing import Any

import gidgethub.abc
import gidgethub.routing
import gidgethub.sansio

from bot.context import HandlerContext
from bot.github.checks import CHECK_NAME, CheckRun, upsert_check_run
from bot.github.comments import upsert_sticky_comment

router = gidgethub.routing.Router()

STICKY_KEY = "sticky"
CHECK_TITLE = "gitops-bot has seen this commit"


def describe(pr: dict[str, Any]) -> str:
    """Return the markdown table row values shared by the check run and the comment."""
    base = pr.get("base", {}).get("ref", "?")
    head = pr.get("head", {}).get("ref", "?")
    sha = str(pr.get("head", {}).get("sha", "?"))
    return f"| `{base}` ← `{head}` | `{sha[:12]}` |"


def check_summary(pr: dict[str, Any], delivery_id: str) -> str:
    """Return the check-run summary for the pull request's head commit."""
    return "\n".join(
        [
            "| Branches | Head commit |",
            "| --- | --- |",
            describe(pr),
            "",
            "No rendering or validation checks are configured on this installation yet, so nothing blocks "
            "this pull request. They report here once enabled.",
            "",
            f"<sub>delivery `{delivery_id}`</sub>",
        ]
    )


def comment_body(pr: dict[str, Any], check_url: str | None) -> str:
    """Return the sticky comment body (the marker is added by the comment helper)."""
    sha = str(pr.get("head", {}).get("sha", "?"))
    lines = [
        "### gitops-bot",
        "",
        "| Branches | Head commit |",
        "| --- | --- |",
        describe(pr),
        "",
    ]
    if check_url:
        lines.append(f"Checks for `{sha[:12]}`: [{CHECK_NAME}]({check_url}).")
    else:
        lines.append(f"Checks for `{sha[:12]}` run in the `{CHECK_NAME}` check.")
    lines += ["", "<sub>This comment is updated in place on every push.</sub>"]
    return "\n".join(lines)


@router.register("pull_request", action="opened")
@router.register("pull_request", action="synchronize")
@router.register("pull_request", action="reopened")
async def pull_request_changed(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *args: Any, **kwargs: Any
) -> None:
    """Create or update the ``gitops-bot`` check run on the head sha and the sticky comment."""
    pr = event.data["pull_request"]
    repo = event.data["repository"]["full_name"]
    number = int(pr["number"])
    head_sha = pr["head"]["sha"]
    run = await upsert_check_run(
        gh,
        repo,
        CheckRun(
            name=CHECK_NAME,
            head_sha=head_sha,
            title=CHECK_TITLE,
            summary=check_summary(pr, ctx.delivery_id),
            conclusion="neutral",
            external_id=f"{repo}#{number}",
        ),
    )
    await upsert_sticky_comment(
        gh, repo, number, STICKY_KEY, comment_body(pr, run.get("html_url")), bot_login=ctx.bot_login
    )
