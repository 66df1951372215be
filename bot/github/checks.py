"""Create or update check runs keyed by name and head sha, with batched annotations.

GitHub accepts at most 50 annotations per request and 65,535 characters in ``output.summary``
and ``output.text``. :func:`upsert_check_run` finds the run with the same name on the same
head sha (so a retried delivery updates it instead of adding a second run), sends the first 50
annotations with the create/update call and the rest in further PATCHes, and truncates long
texts with a visible note.

https://docs.github.com/en/rest/checks/runs
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

import gidgethub.abc

from bot.domain.model import Finding

CHECK_NAME = "gitops-bot"
ANNOTATIONS_PER_REQUEST = 50
MAX_OUTPUT_CHARS = 65_535
MAX_TITLE_CHARS = 255
TRUNCATION_NOTE = "\n\n_… truncated: the full text is longer than GitHub allows in a check run._"

Status = Literal["queued", "in_progress", "completed"]
Conclusion = Literal["success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required"]


def truncate(text: str, limit: int = MAX_OUTPUT_CHARS, note: str = TRUNCATION_NOTE) -> str:
    """Return ``text`` cut to at most ``limit`` characters, ending with ``note`` when cut.

    Cuts at the last line break before the limit when there is one, so a markdown table row
    or a diff line is never split in the middle.
    """
    if len(text) <= limit:
        return text
    room = max(0, limit - len(note))
    cut = text[:room]
    newline = cut.rfind("\n")
    if newline > room // 2:
        cut = cut[:newline]
    return (cut + note)[:limit]


def annotation(finding: Finding) -> dict[str, Any]:
    """Return the check-run annotation of one finding (title = rule, message + hint)."""
    message = finding.message if not finding.hint else f"{finding.message}\n{finding.hint}"
    start = max(1, finding.line)
    end = max(start, finding.end_line or start)
    out: dict[str, Any] = {
        "path": finding.path,
        "start_line": start,
        "end_line": end,
        "annotation_level": finding.severity.annotation_level,
        "title": finding.rule[:MAX_TITLE_CHARS],
        "message": truncate(message, 64_000),
    }
    if finding.column is not None and end == start:
        out["start_column"] = finding.column
        out["end_column"] = finding.column
    return out


def annotations_from_findings(findings: Iterable[Finding]) -> list[dict[str, Any]]:
    """Return annotations for ``findings`` in file/line order."""
    return [annotation(f) for f in sorted(findings, key=Finding.sort_key)]


@dataclass
class CheckRun:
    """What one check run should show. ``conclusion`` is required when ``status`` is completed."""

    name: str
    head_sha: str
    title: str
    summary: str
    status: Status = "completed"
    conclusion: Conclusion | None = None
    text: str | None = None
    annotations: Sequence[Mapping[str, Any]] = field(default_factory=list)
    details_url: str | None = None
    external_id: str | None = None
    actions: Sequence[Mapping[str, str]] = field(default_factory=list)

    def output(self, annotations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Return the ``output`` object with truncated texts and the given annotation batch."""
        out: dict[str, Any] = {"title": self.title[:MAX_TITLE_CHARS], "summary": truncate(self.summary)}
        if self.text:
            out["text"] = truncate(self.text)
        if annotations:
            out["annotations"] = [dict(a) for a in annotations]
        return out

    def body(self, annotations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Return the create/update request body carrying one annotation batch."""
        if self.status == "completed" and self.conclusion is None:
            raise ValueError(f"check run {self.name!r} is completed but has no conclusion")
        data: dict[str, Any] = {"name": self.name, "status": self.status, "output": self.output(annotations)}
        if self.status == "completed":
            data["conclusion"] = self.conclusion
        if self.details_url:
            data["details_url"] = self.details_url
        if self.external_id:
            data["external_id"] = self.external_id
        if self.actions:
            data["actions"] = [dict(a) for a in self.actions[:3]]
        return data


def _batches(items: Sequence[Mapping[str, Any]], size: int) -> list[Sequence[Mapping[str, Any]]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


async def find_check_run(
    gh: gidgethub.abc.GitHubAPI, repo: str, head_sha: str, name: str
) -> dict[str, Any] | None:
    """Return the newest check run called ``name`` on ``head_sha`` made by this App, or None."""
    data = await gh.getitem(
        f"/repos/{repo}/commits/{head_sha}/check-runs?check_name={name}&filter=latest&per_page=100"
    )
    runs = data.get("check_runs", []) if isinstance(data, dict) else []
    matching = [r for r in runs if isinstance(r, dict) and r.get("name") == name]
    if not matching:
        return None
    return max(matching, key=lambda r: int(r.get("id", 0)))


async def upsert_check_run(gh: gidgethub.abc.GitHubAPI, repo: str, run: CheckRun) -> dict[str, Any]:
    """Create the check run, or update the one with the same name on the same head sha.

    Annotations go 50 per request: the first batch with the create/update, the rest as
    further PATCHes that repeat title and summary (GitHub requires them in every output).
    An existing run that already carries annotations is replaced by a new run instead (GitHub
    appends annotations on update and shows the newest run of a name), so running twice
    never doubles them. Returns the last check run object GitHub answered.
    """
    async with head_lock(repo, run.head_sha):
        return await _upsert(gh, repo, run)


_HEAD_LOCKS: dict[str, tuple[asyncio.Lock, int]] = {}

LockProvider = Callable[[str], AbstractAsyncContextManager[None]]
_SHARED_LOCK: LockProvider | None = None


def use_shared_lock(provider: LockProvider | None) -> None:
    """Make :func:`head_lock` also hold a lock shared by every replica (PostgreSQL advisory lock).

    Set by the service when its delivery store offers ``advisory_lock`` (the PostgreSQL store);
    with one replica (SQLite) the in-process lock is enough.
    """
    global _SHARED_LOCK
    _SHARED_LOCK = provider


@contextlib.asynccontextmanager
async def head_lock(repo: str, head_sha: str) -> AsyncIterator[None]:
    """Hold the lock of one head commit's check runs in this process while finding and writing them.

    The worker's concurrent deliveries and the reconciler may check the same head together;
    unserialised, each found no run and created one. Every writer that lists then creates
    check runs (``upsert_check_run``, the governance checks) takes it. Not reentrant.
    """
    key = f"{repo}@{head_sha}"
    lock, users = _HEAD_LOCKS.get(key, (asyncio.Lock(), 0))
    _HEAD_LOCKS[key] = (lock, users + 1)
    try:
        async with lock:
            if _SHARED_LOCK is None:
                yield
            else:
                async with _SHARED_LOCK(f"gitops-bot:check-runs:{key}"):
                    yield
    finally:
        lock, users = _HEAD_LOCKS[key]
        if users <= 1:
            del _HEAD_LOCKS[key]
        else:
            _HEAD_LOCKS[key] = (lock, users - 1)


async def _upsert(gh: gidgethub.abc.GitHubAPI, repo: str, run: CheckRun) -> dict[str, Any]:
    batches = _batches(list(run.annotations), ANNOTATIONS_PER_REQUEST)
    existing = await find_check_run(gh, repo, run.head_sha, run.name)
    output = existing.get("output") if existing else None
    had_annotations = isinstance(output, dict) and int(output.get("annotations_count") or 0) > 0
    if existing is None or (run.annotations and had_annotations):
        # GitHub appends annotations on update; a fresh run (shown instead of the old one)
        # keeps a re-run from doubling them.
        existing = None
        body = run.body(batches[0])
        body["head_sha"] = run.head_sha
        answer: Any = await gh.post(f"/repos/{repo}/check-runs", data=body)
    else:
        answer = await gh.patch(f"/repos/{repo}/check-runs/{existing['id']}", data=run.body(batches[0]))
    run_id = answer.get("id") if isinstance(answer, dict) else None
    if run_id is None and existing is not None:
        run_id = existing["id"]
    for batch in batches[1:]:
        answer = await gh.patch(f"/repos/{repo}/check-runs/{run_id}", data={"output": run.output(batch)})
    return answer if isinstance(answer, dict) else {}
