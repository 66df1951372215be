"""Check runs keyed by name + head sha with batched annotations; sticky comments by marker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from bot.domain.model import Finding, Severity
from bot.github.checks import (
    MAX_OUTPUT_CHARS,
    CheckRun,
    annotations_from_findings,
    truncate,
    upsert_check_run,
    write_check_runs,
)
from bot.github.comments import marker, parse_marker, upsert_comment_parts, upsert_sticky_comment
from bot.github.writes import GitHubWrites
from tests.support.github import FakeGitHub

WRITES = GitHubWrites()  # this process's write locks, no App id (every run counts)

SHA = "a" * 40


def _findings(n: int) -> list[Finding]:
    return [
        Finding("schema", Severity.ERROR, f"clusters/c{i:03}.yaml", i + 1, f"bad {i}", "fix it")
        for i in range(n)
    ]


def test_truncate_keeps_short_text_and_cuts_long_text_at_a_line() -> None:
    assert truncate("short") == "short"
    text = "\n".join(f"| row {i} | value |" for i in range(10_000))
    cut = truncate(text)
    assert len(cut) <= MAX_OUTPUT_CHARS
    assert cut.endswith("longer than GitHub allows in a check run._")
    body = cut.split("\n\n_…")[0]
    assert body.splitlines()[-1].endswith("| value |")


def test_annotations_from_findings() -> None:
    f = Finding("fleet.region", Severity.WARNING, "a.yaml", 3, "region unknown", "use eu-west-1", column=5)
    (a,) = annotations_from_findings([f])
    assert a == {
        "path": "a.yaml",
        "start_line": 3,
        "end_line": 3,
        "annotation_level": "warning",
        "title": "fleet.region",
        "message": "region unknown\nuse eu-west-1",
        "start_column": 5,
        "end_column": 5,
    }


async def test_check_run_is_created_once_and_updated_in_place() -> None:
    gh = FakeGitHub()
    run = CheckRun("gitops-bot", SHA, "first", "summary", conclusion="neutral")
    await upsert_check_run(gh, "o/r", run, writes=WRITES)
    await upsert_check_run(
        gh, "o/r", CheckRun("gitops-bot", SHA, "second", "s2", conclusion="success"), writes=WRITES
    )
    assert len(gh.check_runs) == 1
    (only,) = gh.check_runs.values()
    assert only["output"]["title"] == "second" and only["conclusion"] == "success"
    other_sha = CheckRun("gitops-bot", "b" * 40, "x", "y", conclusion="neutral")
    await upsert_check_run(gh, "o/r", other_sha, writes=WRITES)
    assert len(gh.check_runs) == 2


async def test_annotations_go_50_per_request() -> None:
    gh = FakeGitHub()
    annotations = annotations_from_findings(_findings(120))
    run = CheckRun("validate", SHA, "3 problems", "s", conclusion="failure", annotations=annotations)
    await upsert_check_run(gh, "o/r", run, writes=WRITES)
    writes = gh.writes()
    assert [c.method for c in writes] == ["POST", "PATCH", "PATCH"]
    assert [len(c.body["output"]["annotations"]) for c in writes] == [50, 50, 20]
    assert all(c.body["output"]["title"] == "3 problems" for c in writes)
    (only,) = gh.check_runs.values()
    assert only["output"]["annotations_count"] == 120
    # Running again does not double the annotations: a fresh run replaces the old one.
    await upsert_check_run(gh, "o/r", run, writes=WRITES)
    newest = max(gh.check_runs.values(), key=lambda r: r["id"])
    assert newest["output"]["annotations_count"] == 120


async def test_long_summaries_are_truncated_in_the_request() -> None:
    gh = FakeGitHub()
    run = CheckRun("gitops-bot", SHA, "t", "x\n" * 50_000, text="y\n" * 50_000, conclusion="neutral")
    await upsert_check_run(gh, "o/r", run, writes=WRITES)
    body = gh.writes()[0].body
    assert len(body["output"]["summary"]) <= MAX_OUTPUT_CHARS
    assert len(body["output"]["text"]) <= MAX_OUTPUT_CHARS


def test_a_completed_run_needs_a_conclusion() -> None:
    with pytest.raises(ValueError, match="no conclusion"):
        CheckRun("x", SHA, "t", "s").body([])


def test_markers() -> None:
    assert marker("sticky") == "<!-- gitops-bot:sticky -->"
    assert marker("diff", 2, 3) == "<!-- gitops-bot:diff part 2/3 -->"
    assert parse_marker("hi\n<!-- gitops-bot:diff part 2/3 -->\nbody") == ("diff", 2)
    assert parse_marker("<!-- gitops-bot:sticky -->") == ("sticky", 1)
    assert parse_marker("no marker") is None
    with pytest.raises(ValueError):
        marker("bad key -->")


async def test_sticky_comment_run_twice_gives_one_comment() -> None:
    gh = FakeGitHub()
    first = await upsert_sticky_comment(gh, "o/r", 5, "sticky", "hello", writes=WRITES)
    second = await upsert_sticky_comment(gh, "o/r", 5, "sticky", "hello again", writes=WRITES)
    assert first == second
    assert [c["body"] for c in gh.comments.values()] == ["<!-- gitops-bot:sticky -->\nhello again"]
    # Unchanged content is not re-sent.
    n = len(gh.writes())
    await upsert_sticky_comment(gh, "o/r", 5, "sticky", "hello again", writes=WRITES)
    assert len(gh.writes()) == n


async def test_human_comments_quoting_the_marker_are_left_alone() -> None:
    gh = FakeGitHub()
    gh.comments[1] = {
        "id": 1,
        "issue": 5,
        "body": "<!-- gitops-bot:sticky --> ha",
        "user": {"login": "eve", "type": "User"},
    }
    await upsert_sticky_comment(gh, "o/r", 5, "sticky", "bot text", writes=WRITES)
    assert gh.comments[1]["body"] == "<!-- gitops-bot:sticky --> ha"
    assert len(gh.comments) == 2


async def test_another_apps_comment_with_the_marker_is_left_alone() -> None:
    gh = FakeGitHub()
    other = {"login": "other-app[bot]", "type": "Bot"}
    gh.comments[1] = {"id": 1, "issue": 5, "body": "<!-- gitops-bot:sticky --> planted", "user": other}
    await upsert_sticky_comment(gh, "o/r", 5, "sticky", "bot text", writes=WRITES)
    assert gh.comments[1]["body"] == "<!-- gitops-bot:sticky --> planted"
    assert len(gh.comments) == 2


async def test_numbered_parts_are_updated_created_and_deleted() -> None:
    gh = FakeGitHub()
    ids = await upsert_comment_parts(gh, "o/r", 5, "diff", ["one", "two", "three"], writes=WRITES)
    assert len(ids) == 3
    bodies = [c["body"] for c in gh.comments.values()]
    assert bodies[1].startswith("<!-- gitops-bot:diff part 2/3 -->\ntwo")
    ids2 = await upsert_comment_parts(gh, "o/r", 5, "diff", ["uno", "dos"], writes=WRITES)
    assert ids2 == ids[:2]
    assert [c["body"] for c in gh.comments.values()] == [
        "<!-- gitops-bot:diff part 1/2 -->\nuno",
        "<!-- gitops-bot:diff part 2/2 -->\ndos",
    ]
    await upsert_comment_parts(gh, "o/r", 5, "diff", ["all in one"], writes=WRITES)
    assert [c["body"] for c in gh.comments.values()] == ["<!-- gitops-bot:diff -->\nall in one"]
    # Other keys and other pull requests are untouched.
    await upsert_sticky_comment(gh, "o/r", 5, "sticky", "s", writes=WRITES)
    await upsert_sticky_comment(gh, "o/r", 6, "diff", "other pr", writes=WRITES)
    await upsert_comment_parts(gh, "o/r", 5, "diff", [], writes=WRITES)
    assert sorted(c["body"] for c in gh.comments.values()) == [
        "<!-- gitops-bot:diff -->\nother pr",
        "<!-- gitops-bot:sticky -->\ns",
    ]


async def test_duplicates_from_a_past_race_are_removed() -> None:
    gh = FakeGitHub()
    for cid in (1, 2):
        gh.comments[cid] = {
            "id": cid,
            "issue": 5,
            "body": "<!-- gitops-bot:sticky -->\nold",
            "user": {"login": "gitops-bot[bot]", "type": "Bot"},
        }
    await upsert_sticky_comment(gh, "o/r", 5, "sticky", "new", writes=WRITES)
    assert list(gh.comments) == [1]
    assert gh.comments[1]["body"] == "<!-- gitops-bot:sticky -->\nnew"


async def test_an_oversized_part_is_refused_before_any_write() -> None:
    gh = FakeGitHub()
    with pytest.raises(ValueError, match="split it further"):
        await upsert_sticky_comment(gh, "o/r", 5, "diff", "x" * 70_000, writes=WRITES)
    assert gh.writes() == []


async def test_concurrent_upserts_of_one_check_create_it_once() -> None:
    """The worker and the reconciler checking one head at the same time make one run, not two."""

    class SlowGitHub:
        """Answers like GitHub, with a pause in every call, so concurrent upserts interleave."""

        def __init__(self) -> None:
            self.runs: list[dict[str, Any]] = []

        async def getiter(self, url: str, *, iterable_key: str) -> AsyncIterator[dict[str, Any]]:
            await asyncio.sleep(0.01)
            for run in list(self.runs):
                yield run

        async def post(self, url: str, data: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(0.01)
            self.runs.append({**data, "id": len(self.runs) + 1, "output": data.get("output")})
            return self.runs[-1]

        async def patch(self, url: str, data: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(0.01)
            return {"id": int(url.rsplit("/", 1)[1])}

    gh = SlowGitHub()
    run = CheckRun("gitops-bot", SHA, "All good", "Nothing to report.", conclusion="success")
    await asyncio.gather(*(upsert_check_run(gh, "acme/fleet", run, writes=WRITES) for _ in range(3)))  # type: ignore[arg-type]
    assert [r["name"] for r in gh.runs] == ["gitops-bot"]


def _lists(gh: FakeGitHub) -> list[str]:
    return [c.path for c in gh.calls if c.method == "GET" and c.path.split("?")[0].endswith("/check-runs")]


async def test_several_runs_share_one_listing_and_an_unchanged_run_is_not_written_again() -> None:
    gh = FakeGitHub()
    runs = [
        CheckRun("gitops-bot/diff", SHA, "2 changes", "diff", text="```diff\n+a\n```", conclusion="neutral"),
        CheckRun("gitops-bot/validate", SHA, "No problems", "ok", conclusion="success"),
        CheckRun("gitops-bot", SHA, "Ready", "all", conclusion="success", external_id="o/r#1"),
    ]
    created = await write_check_runs(gh, "o/r", SHA, runs, writes=WRITES)
    assert _lists(gh) == [f"/repos/o/r/commits/{SHA}/check-runs?per_page=100"]
    assert [c.method for c in gh.writes()] == ["POST", "POST", "POST"]
    start = len(gh.calls)
    again = await write_check_runs(gh, "o/r", SHA, runs, writes=WRITES)
    assert [c.method for c in gh.calls[start:]] == ["GET"]  # same results: nothing to write
    assert [r["id"] for r in again] == [r["id"] for r in created]
    assert again[2]["html_url"] == created[2]["html_url"]  # callers link to the run either way
    changed = replace(runs[1], title="1 warning", summary="warn")
    await write_check_runs(gh, "o/r", SHA, [runs[0], changed], writes=WRITES)
    assert [(c.method, c.path) for c in gh.calls[start + 1 :]] == [
        ("GET", f"/repos/o/r/commits/{SHA}/check-runs?per_page=100"),
        ("PATCH", f"/repos/o/r/check-runs/{created[1]['id']}"),
    ]
    assert len(gh.check_runs) == 3


async def test_one_run_lists_only_its_name_and_every_page_is_read() -> None:
    gh = FakeGitHub()
    for i in range(150):  # other apps' runs on the same head: two pages of 100
        gh.check_runs[i] = {"id": i, "name": f"ci/job-{i}", "head_sha": SHA, "output": {}}
    mine = {"id": 200, "name": "gitops-bot/signatures", "head_sha": SHA, "status": "completed", "output": {}}
    gh.check_runs[200] = mine
    signatures = CheckRun("gitops-bot/signatures", SHA, "Signed", "ok", conclusion="success")
    approvals = CheckRun("gitops-bot/approvals", SHA, "Approved", "ok", conclusion="success")
    await write_check_runs(gh, "o/r", SHA, [signatures, approvals], writes=WRITES)
    assert _lists(gh) == [
        f"/repos/o/r/commits/{SHA}/check-runs?per_page=100",
        f"/repos/o/r/commits/{SHA}/check-runs?per_page=100&page=2",
    ]
    assert [(c.method, c.path.rsplit("/", 1)[1]) for c in gh.writes()] == [
        ("PATCH", "200"),
        ("POST", "check-runs"),
    ]
    start = len(gh.calls)
    await upsert_check_run(gh, "o/r", replace(signatures, summary="still ok"), writes=WRITES)
    assert [c.path for c in gh.calls[start:]] == [
        f"/repos/o/r/commits/{SHA}/check-runs?check_name=gitops-bot%2Fsignatures&per_page=100",
        "/repos/o/r/check-runs/200",
    ]


async def test_a_completed_run_is_recreated_when_it_goes_back_to_in_progress() -> None:
    gh = FakeGitHub()
    pending = CheckRun(
        "gitops-bot/promotion", SHA, "Waiting for soak", "1 gate pending", status="in_progress"
    )
    first = await upsert_check_run(gh, "o/r", pending, writes=WRITES)
    second = await upsert_check_run(
        gh, "o/r", replace(pending, summary="1 gate pending, 5 min left"), writes=WRITES
    )
    assert second["id"] == first["id"] and "conclusion" not in gh.writes()[-1].body
    done = await upsert_check_run(
        gh, "o/r", replace(pending, status="completed", conclusion="success"), writes=WRITES
    )
    assert done["id"] == first["id"] and done["conclusion"] == "success"
    reopened = await upsert_check_run(
        gh, "o/r", pending, writes=WRITES
    )  # GitHub would keep a completed run completed
    assert reopened["id"] != first["id"] and reopened["status"] == "in_progress"
    assert [c.method for c in gh.writes()] == ["POST", "PATCH", "PATCH", "POST"]


async def test_a_run_with_annotations_is_replaced_even_when_the_new_one_has_none() -> None:
    gh = FakeGitHub()
    annotations = annotations_from_findings(_findings(2))
    failing = CheckRun(
        "gitops-bot/validate", SHA, "2 errors", "s", conclusion="failure", annotations=annotations
    )
    first = await upsert_check_run(gh, "o/r", failing, writes=WRITES)
    fixed = await upsert_check_run(
        gh,
        "o/r",
        CheckRun("gitops-bot/validate", SHA, "No problems", "ok", conclusion="success"),
        writes=WRITES,
    )
    assert fixed["id"] != first["id"] and fixed["output"]["annotations_count"] == 0  # no stale annotations


async def test_runs_for_another_head_are_refused_before_any_call() -> None:
    gh = FakeGitHub()
    with pytest.raises(ValueError, match="not " + SHA):
        await write_check_runs(
            gh, "o/r", SHA, [CheckRun("x", "b" * 40, "t", "s", conclusion="success")], writes=WRITES
        )
    assert gh.calls == []
    assert await write_check_runs(gh, "o/r", SHA, [], writes=WRITES) == []
    assert gh.calls == []


async def test_runs_of_another_app_are_neither_updated_nor_mistaken_for_ours() -> None:
    gh = FakeGitHub()
    # A CI system (another App) posted a run with our name on the same commit.
    gh.check_runs[7] = {
        "id": 7,
        "name": "gitops-bot/validate",
        "head_sha": SHA,
        "app": {"id": 99},
        "output": {},
    }
    await write_check_runs(
        gh,
        "o/r",
        SHA,
        [CheckRun("gitops-bot/validate", SHA, "ok", "ok", conclusion="success")],
        writes=GitHubWrites(app_id=4242),
    )
    assert _lists(gh) == [
        f"/repos/o/r/commits/{SHA}/check-runs?check_name=gitops-bot%2Fvalidate&per_page=100&app_id=4242"
    ]
    assert [(c.method, c.path) for c in gh.writes()] == [("POST", "/repos/o/r/check-runs")]
    assert gh.check_runs[7]["output"] == {}  # theirs is untouched
