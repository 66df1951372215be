"""Merge groups: GitHub's ref names, and how per-PR checks carry over (fail closed)."""

from __future__ import annotations

from bot.domain.merge_queue import QueuedPull, QueueRef, carry_over, parse_queue_ref

SHA = "8ba7d9e0" + "0" * 32


def test_queue_refs_are_read_as_github_makes_them() -> None:
    assert parse_queue_ref(f"refs/heads/gh-readonly-queue/main/pr-42-{SHA}") == QueueRef("main", 42, SHA)
    assert parse_queue_ref(f"refs/heads/gh-readonly-queue/env/prod/pr-7-{SHA}") == QueueRef(
        "env/prod", 7, SHA
    )
    for bad in (
        f"refs/heads/main/pr-42-{SHA}",  # not a queue branch
        f"refs/heads/gh-readonly-queue/main/pr-x-{SHA}",
        f"refs/heads/gh-readonly-queue/main/pr-42-{SHA[:12]}",  # short sha: GitHub writes it whole
        f"gh-readonly-queue/main/pr-42-{SHA}",  # not a full ref
        f"refs/heads/gh-readonly-queue/main/pr-42-{SHA}\n",
    ):
        assert parse_queue_ref(bad) is None, bad


def _pull(number: int, conclusion: str | None, *, in_group: bool = True) -> QueuedPull:
    return QueuedPull(number, f"{number:040x}", in_group, {"gitops-bot/approvals": conclusion})


def test_a_group_passes_only_when_every_pull_passed_on_its_current_head() -> None:
    ok = carry_over("gitops-bot/approvals", [_pull(2, "success"), _pull(1, "neutral")])
    assert (
        ok.conclusion == "success"
        and ok.title == "All 2 pull request(s) in the group pass `gitops-bot/approvals`"
    )
    assert ok.summary.index("| #1 |") < ok.summary.index("| #2 |")
    for pulls, why in (
        ([_pull(1, "success"), _pull(2, "failure")], "`failure`"),
        ([_pull(1, None)], "no `gitops-bot/approvals` result from gitops-bot on this commit"),
        ([_pull(1, "success", in_group=False)], "head moved after it was queued"),
    ):
        result = carry_over("gitops-bot/approvals", pulls)
        assert result.conclusion == "failure" and why in result.summary, result
    assert carry_over("gitops-bot/signatures", []).conclusion == "failure"  # nothing found: fail closed
