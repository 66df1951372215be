"""Pull request opened, synchronized or reopened: render, validate, report.

The handler is thin: :func:`bot.prchecks.publish.build_and_post` fetches the repository mirror,
runs the pure pipeline (:func:`bot.prchecks.build.build_check`: config from the base revision,
rendered diff, validation, Gatekeeper, signatures with ``trust: keys``) and writes the
``gitops-bot/diff``, ``gitops-bot/validate`` and ``gitops-bot`` check runs and the one sticky
comment, all idempotently. In a process without a git mirror (``replay --dry-run`` without
credentials, unit tests) it writes only the ``gitops-bot`` status check and comment below.
"""

from __future__ import annotations

from typing import Any

import gidgethub.abc
import gidgethub.routing
import gidgethub.sansio

from bot.github.checks import CHECK_NAME, CheckRun, upsert_check_run
from bot.github.comments import upsert_sticky_comment
from bot.prchecks.publish import STICKY_KEY, build_and_post, self_service
from bot.service.context import HandlerContext
from handlers.governance import approvals_after_diff

router = gidgethub.routing.Router()

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


async def write_status(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, pr: dict[str, Any]
) -> None:
    """Create or update the ``gitops-bot`` check run on the head sha and the sticky comment."""
    number = int(pr["number"])
    run = await upsert_check_run(
        gh,
        repo,
        CheckRun(
            name=CHECK_NAME,
            head_sha=pr["head"]["sha"],
            title=CHECK_TITLE,
            summary=check_summary(pr, ctx.delivery_id),
            conclusion="neutral",
            external_id=f"{repo}#{number}",
        ),
        writes=ctx.writes,
    )
    await upsert_sticky_comment(
        gh,
        repo,
        number,
        STICKY_KEY,
        comment_body(pr, run.get("html_url")),
        writes=ctx.writes,
        bot_login=ctx.bot_login,
    )


@router.register("pull_request", action="opened")
@router.register("pull_request", action="synchronize")
@router.register("pull_request", action="reopened")
async def pull_request_changed(
    event: gidgethub.sansio.Event, gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *args: Any, **kwargs: Any
) -> None:
    """A pull request got a new head (or was opened): run the checks and write the results."""
    repo = event.data["repository"]["full_name"]
    pr = event.data["pull_request"]
    if not getattr(ctx.repos, "available", True):
        await write_status(gh, ctx, repo=repo, pr=pr)
        return
    await check_pull_request(gh, ctx, repo=repo, pr=pr)


async def check_pull_request(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, pr: dict[str, Any]
) -> None:
    """Run every pull-request check for ``pr``, post the results, then the approvals and self-service."""
    result, git_dir = await build_and_post(gh, ctx, repo=repo, pr=pr)
    await approvals_after_diff(gh, ctx, repo, pr, [d.rule for d in result.diff.dangers], git_dir)
    await self_service(gh, ctx, repo=repo, pr=pr, result=result)


class PullRequestChecksFailed(RuntimeError):
    """Some pull-request checks raised; the message names them (handler and exception type)."""


async def run_pr_checks(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, *, repo: str, pr: dict[str, Any]
) -> None:
    """Run every pull-request check again for ``pr``, as if its head had just been pushed.

    Used by ``/validate``, ``/diff`` and the reconciler. Builds a ``pull_request``
    ``synchronize`` event from the pull request object and dispatches it through the combined
    router (narrowed by ``GITOPS_BOT_HANDLERS``), each handler isolated from the others;
    raises :class:`PullRequestChecksFailed` naming the ones that failed.
    """
    import handlers
    from bot.service.dispatch import dispatch_isolated

    names = tuple(getattr(ctx.settings, "handlers", ()) or ())
    the_router = handlers.combined_router(names) if names else handlers.ROUTER
    base_repo = dict((pr.get("base") or {}).get("repo") or {})
    base_repo["full_name"] = repo
    payload = {"action": "synchronize", "number": pr["number"], "pull_request": pr, "repository": base_repo}
    event = gidgethub.sansio.Event(
        payload, event="pull_request", delivery_id=ctx.delivery_id or "run-pr-checks"
    )
    failures = await dispatch_isolated(the_router, event, gh, ctx)
    if failures:
        parts = ", ".join(f"{f.handler} ({f.error.split(':', 1)[0]})" for f in failures)
        raise PullRequestChecksFailed(f"{len(failures)} check(s) failed on {repo}#{pr['number']}: {parts}")
