"""Create or update check runs keyed by name and head sha, with batched annotations.

Every writer of check runs goes through :func:`write_check_runs` (the PR pipeline, promotion,
governance; :func:`upsert_check_run` for one run): it lists the head's check runs once, under
the head's write lock (:class:`~bot.github.writes.GitHubWrites`), then creates each run or updates
the newest one of its name (so a retried delivery updates instead of adding a second run, and
writes nothing when the run already shows the same result). GitHub accepts at most 50
annotations per request and 65,535 characters in ``output.summary`` and ``output.text``:
annotations go in batches of 50 and long texts are truncated with a visible note.

https://docs.github.com/en/rest/checks/runs
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import gidgethub.abc

from bot.domain.model import Finding
from bot.github.writes import GitHubWrites

CHECK_NAME = "gitops-bot"
ANNOTATIONS_PER_REQUEST = 50
PER_PAGE = 100  # the most GitHub (and the simulator) return per page
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


async def list_check_runs(
    gh: gidgethub.abc.GitHubAPI, repo: str, head_sha: str, names: Iterable[str] = (), *, writes: GitHubWrites
) -> dict[str, dict[str, Any]]:
    """Return the newest check run of each name on ``head_sha``, listing every page once.

    With exactly one name in ``names`` GitHub filters by ``check_name`` (one page even on a head
    that carries hundreds of CI runs); otherwise all runs of the head are listed, 100 a page,
    following ``Link: rel="next"``. GitHub's default ``filter=latest`` applies. Runs of another
    head (a ref that moved), of another App (``writes.app_id``) and entries without a
    name or id are ignored.
    """
    wanted = set(names)
    query: dict[str, Any] = {"per_page": PER_PAGE}
    if len(wanted) == 1:
        query = {"check_name": next(iter(wanted)), **query}
    if writes.app_id is not None:
        query["app_id"] = writes.app_id
    url = f"/repos/{repo}/commits/{head_sha}/check-runs?{urlencode(query)}"
    latest: dict[str, dict[str, Any]] = {}
    async for run in gh.getiter(url, iterable_key="check_runs"):
        if not isinstance(run, dict) or run.get("head_sha", head_sha) != head_sha:
            continue
        if not writes.made_by_us(run):
            continue
        name = run.get("name")
        if not isinstance(name, str) or (wanted and name not in wanted) or not _run_id(run):
            continue
        if name not in latest or _run_id(run) > _run_id(latest[name]):
            latest[name] = run
    return latest


async def write_check_runs(
    gh: gidgethub.abc.GitHubAPI, repo: str, head_sha: str, runs: Sequence[CheckRun], *, writes: GitHubWrites
) -> list[dict[str, Any]]:
    """Create or update each of ``runs`` on ``head_sha`` with one listing of the head's check runs.

    Holds ``writes.head_lock`` for the whole list-then-write. For each run, in order:

    * no run of that name yet: create it;
    * the newest one carries annotations (GitHub appends them on update), or it is completed
      and the new one is queued/in_progress (a re-opened gate): create a fresh run, which
      GitHub shows instead of the old one;
    * it already shows the same status, conclusion and output: write nothing;
    * otherwise update it.

    Annotations go 50 per request: the first batch with the create/update, the rest as further
    PATCHes repeating title and summary (GitHub requires them in every output). Returns, per
    run, the last check run object GitHub answered (the listed one when nothing was written).
    Raises ValueError, before any call, when a run is for another head sha.
    """
    for run in runs:
        if run.head_sha != head_sha:
            raise ValueError(f"check run {run.name!r} is for {run.head_sha}, not {head_sha}")
    if not runs:
        return []
    answers: list[dict[str, Any]] = []
    async with writes.head_lock(repo, head_sha):
        existing = await list_check_runs(gh, repo, head_sha, [run.name for run in runs], writes=writes)
        for run in runs:
            answer = await _write(gh, repo, run, existing.get(run.name))
            if _run_id(answer):  # a name given twice updates the run just written
                existing[run.name] = answer
            answers.append(answer)
    return answers


async def upsert_check_run(
    gh: gidgethub.abc.GitHubAPI, repo: str, run: CheckRun, *, writes: GitHubWrites
) -> dict[str, Any]:
    """Create or update one check run on its head sha (:func:`write_check_runs` for one run)."""
    (answer,) = await write_check_runs(gh, repo, run.head_sha, [run], writes=writes)
    return answer


def _run_id(run: Mapping[str, Any]) -> int:
    try:
        return int(run.get("id") or 0)
    except (TypeError, ValueError):
        return 0


def _annotation_count(run: Mapping[str, Any]) -> int:
    output = run.get("output")
    try:
        return int(output.get("annotations_count") or 0) if isinstance(output, dict) else 0
    except (TypeError, ValueError):
        return 0


def _replaces(run: CheckRun, existing: Mapping[str, Any]) -> bool:
    """Return True when ``run`` must be a new check run rather than an update of ``existing``."""
    reopened = existing.get("status") == "completed" and run.status != "completed"
    return reopened or _annotation_count(existing) > 0


def _shows(existing: Mapping[str, Any], run: CheckRun) -> bool:
    """Return True when ``existing`` already shows what ``run`` would write (nothing to send)."""
    if run.annotations or run.actions:
        return False  # neither can be compared from the listing
    output = existing.get("output")
    if not isinstance(output, dict):
        return False
    want = run.output([])
    conclusion = run.conclusion if run.status == "completed" else None
    return (
        existing.get("status") == run.status
        and existing.get("conclusion") == conclusion
        and output.get("title") == want["title"]
        and output.get("summary") == want["summary"]
        and (output.get("text") or None) == want.get("text")
        and all(
            existing.get(key) == value
            for key, value in (("details_url", run.details_url), ("external_id", run.external_id))
            if value
        )
    )


async def _write(
    gh: gidgethub.abc.GitHubAPI, repo: str, run: CheckRun, existing: dict[str, Any] | None
) -> dict[str, Any]:
    batches = _batches(list(run.annotations), ANNOTATIONS_PER_REQUEST)
    if existing is not None and _replaces(run, existing):
        existing = None
    if existing is None:
        body = run.body(batches[0])
        body["head_sha"] = run.head_sha
        answer: Any = await gh.post(f"/repos/{repo}/check-runs", data=body)
    elif _shows(existing, run):
        return existing
    else:
        answer = await gh.patch(f"/repos/{repo}/check-runs/{existing['id']}", data=run.body(batches[0]))
    run_id = answer.get("id") if isinstance(answer, dict) else None
    if run_id is None and existing is not None:
        run_id = existing["id"]
    for batch in batches[1:]:
        answer = await gh.patch(f"/repos/{repo}/check-runs/{run_id}", data={"output": run.output(batch)})
    return answer if isinstance(answer, dict) else {}
