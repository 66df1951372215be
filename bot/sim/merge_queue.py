"""GitHub's merge queue on the simulator, as GitHub documents it.

A branch gets a queue with :meth:`MergeQueueRoutes.enable_merge_queue` (GitHub: a ruleset or
branch protection rule "Require merge queue" with required status checks). A person with
write permission adds a pull request whose required checks pass on its head
(:meth:`enqueue`; the PR gets ``pull_request enqueued``). For each entry GitHub builds a
*merge group*: a merge commit of the PR head onto the entries ahead (or the branch tip),
pushed as ``refs/heads/gh-readonly-queue/<base>/pr-<number>-<parent sha>`` (a ``push`` and a
``check_suite requested`` like any branch) and announced with ``merge_group
checks_requested``. Check runs reported on the group's head sha decide, in queue order:

* every required check completed ``success`` (or ``neutral``/``skipped``): the base branch is
  moved to the group's head (no new commit), the PR is closed as merged, the group is
  ``destroyed`` with reason ``merged``;
* a required check completed otherwise: the entry leaves the queue (``pull_request dequeued``,
  group ``destroyed`` ``dequeued``) and the groups behind it are rebuilt (``invalidated``);
* otherwise the queue waits.

A push to a queued PR's head removes it from the queue, as on GitHub. Only the merge method
``merge`` is modelled. The ``gh-readonly-queue`` refs cannot be pushed to by people (GitHub
refuses it); here they are written only by the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.git.files import git
from bot.sim import gitops
from bot.sim.core import ApiError, SimCore
from bot.sim.state import PullRequest, Repo, now_iso, rank

QUEUE_PREFIX = "refs/heads/gh-readonly-queue/"
PASSING = frozenset({"success", "neutral", "skipped"})
GITHUB = gitops.Person("GitHub", "noreply@github.com", "")


@dataclass
class Entry:
    """One queued pull request and its current merge group."""

    number: int
    enqueued_by: str
    head_ref: str = ""  # the full gh-readonly-queue ref
    head_sha: str = ""
    base_sha: str = ""


@dataclass
class Queue:
    """The merge queue of one branch: its required check names and entries in order."""

    required: tuple[str, ...]
    entries: list[Entry] = field(default_factory=list)


class MergeQueueRoutes(SimCore):
    """Merge queues per (repository, branch); driven by :meth:`enqueue` and check-run writes."""

    @property
    def merge_queues(self) -> dict[tuple[str, str], Queue]:
        queues: dict[tuple[str, str], Queue] | None = self.__dict__.get("_merge_queues")
        if queues is None:
            queues = self.__dict__["_merge_queues"] = {}
        return queues

    def enable_merge_queue(self, full_name: str, branch: str, required: tuple[str, ...] | list[str]) -> None:
        """Require a merge queue on ``branch`` with ``required`` status checks (by check-run name)."""
        self.merge_queues[(full_name, branch)] = Queue(tuple(required))
        self.protect_branch(
            full_name,
            branch,
            {
                "url": f"{self.base_url}/repos/{full_name}/branches/{branch}/protection",
                "required_status_checks": {"strict": False, "contexts": list(required), "checks": []},
            },
        )

    def queue_entries(self, full_name: str, branch: str) -> list[Entry]:
        """The entries of a branch's queue, first to merge first."""
        queue = self.merge_queues.get((full_name, branch))
        return list(queue.entries) if queue else []

    def enqueue(self, full_name: str, number: int, by: str) -> Entry:
        """``by`` adds PR ``number`` to its base branch's queue (GitHub's "Merge when ready")."""
        repo = self.world.repos[full_name]
        pr = self.pull(full_name, number)
        queue = self.merge_queues.get((full_name, pr.base_ref))
        if queue is None:
            raise ApiError(422, f"{pr.base_ref} does not require a merge queue")
        if rank(self.world.permission(repo, by)) < rank("write"):
            raise ApiError(403, "Must have write access to add a pull request to the merge queue")
        if pr.state != "open" or any(e.number == number for e in queue.entries):
            raise ApiError(422, "Pull request is closed or already queued")
        missing = [n for n in queue.required if self._conclusion(repo, pr.head_sha, n) not in PASSING]
        if missing:
            raise ApiError(405, f"Required status checks have not passed: {', '.join(missing)}")
        entry = Entry(number, by)
        queue.entries.append(entry)
        self._send(
            "pull_request",
            {"action": "enqueued", "number": number, "pull_request": self.views.pull(pr)},
            repo,
            sender=by,
        )
        self._build_groups(repo, pr.base_ref, queue, start=len(queue.entries) - 1)
        self.checks_changed(repo, entry.head_sha)  # required checks may already be reported
        return entry

    def _conclusion(self, repo: Repo, sha: str, name: str) -> str | None:
        runs = [r for r in self.world.runs.values() if r.repo == repo.full_name and r.head_sha == sha]
        latest = max((r for r in runs if r.name == name), key=lambda r: r.id, default=None)
        if latest is None or latest.status != "completed":
            return None
        return latest.conclusion or "neutral"

    def _build_groups(self, repo: Repo, branch: str, queue: Queue, start: int) -> None:
        """(Re)build the merge groups of ``queue.entries[start:]`` on the group ahead or the branch tip."""
        parent = (
            queue.entries[start - 1].head_sha if start else gitops.resolve(repo.path, f"refs/heads/{branch}")
        )
        assert parent is not None
        for entry in list(queue.entries[start:]):
            pr = self.pull(repo.full_name, entry.number)
            if entry.head_ref:
                self._destroy(repo, entry, "invalidated")
            tree = gitops.merge_tree(repo.path, parent, pr.head_sha)
            if tree is None:  # conflicts with the entries ahead: GitHub removes it
                queue.entries.remove(entry)
                self._dequeued(repo, pr, "MERGE_CONFLICT")
                continue
            source = f"{pr.head_repo.split('/')[0]}/{pr.head_ref}"
            message = f"Merge pull request #{pr.number} from {source}\n\n{pr.title}\n"
            sha = gitops.commit_tree(repo.path, tree, [parent, pr.head_sha], message, GITHUB, GITHUB)
            entry.head_ref = f"{QUEUE_PREFIX}{branch}/pr-{pr.number}-{parent}"
            entry.head_sha, entry.base_sha = sha, parent
            gitops.update_ref(repo.path, entry.head_ref, sha)
            self.ref_moved(repo, entry.head_ref, gitops.ZERO, sha, self.bot_login)
            self._send(
                "merge_group",
                {"action": "checks_requested", "merge_group": self._group(repo, entry, branch)},
                repo,
            )
            parent = sha

    def _group(self, repo: Repo, entry: Entry, branch: str) -> dict[str, Any]:
        info = gitops.commit_info(repo.path, entry.head_sha)
        tree = git(repo.path, "rev-parse", f"{entry.head_sha}^{{tree}}").decode().strip()
        return {
            "head_sha": entry.head_sha,
            "head_ref": entry.head_ref,
            "base_sha": entry.base_sha,
            "base_ref": f"refs/heads/{branch}",
            "head_commit": {
                "id": entry.head_sha,
                "tree_id": tree,
                "message": info.message,
                "timestamp": now_iso(),
                "author": {"name": info.author.name, "email": info.author.email},
                "committer": {"name": info.committer.name, "email": info.committer.email},
            },
        }

    def _destroy(self, repo: Repo, entry: Entry, reason: str) -> None:
        branch = entry.head_ref.removeprefix(QUEUE_PREFIX).rsplit("/", 1)[0]
        payload = {"action": "destroyed", "reason": reason, "merge_group": self._group(repo, entry, branch)}
        git(repo.path, "update-ref", "-d", entry.head_ref, check=False)
        self.ref_moved(repo, entry.head_ref, entry.head_sha, gitops.ZERO, self.bot_login)
        self._send("merge_group", payload, repo)

    def _dequeued(self, repo: Repo, pr: PullRequest, reason: str) -> None:
        self._send(
            "pull_request",
            {
                "action": "dequeued",
                "number": pr.number,
                "reason": reason,
                "pull_request": self.views.pull(pr),
            },
            repo,
        )

    def checks_changed(self, repo: Repo, sha: str) -> None:
        """A check run on ``sha`` changed: merge passing groups in order, drop failing ones."""
        for (full_name, branch), queue in self.merge_queues.items():
            if full_name != repo.full_name or not any(e.head_sha == sha for e in queue.entries):
                continue
            while queue.entries:
                failing = next(
                    (
                        i
                        for i, e in enumerate(queue.entries)
                        if self._failed(repo, e.head_sha, queue.required)
                    ),
                    None,
                )
                if failing is not None:
                    self._drop(repo, branch, queue, failing, "CI_FAILURE")
                    continue
                first = queue.entries[0].head_sha
                if any(self._conclusion(repo, first, n) is None for n in queue.required):
                    return  # the head of the queue still waits for a check
                self._merge_group(repo, branch, queue)

    def _failed(self, repo: Repo, sha: str, required: tuple[str, ...]) -> bool:
        verdicts = (self._conclusion(repo, sha, n) for n in required)
        return any(v is not None and v not in PASSING for v in verdicts)

    def _drop(self, repo: Repo, branch: str, queue: Queue, index: int, reason: str) -> None:
        entry = queue.entries.pop(index)
        self._destroy(repo, entry, "dequeued")
        self._dequeued(repo, self.pull(repo.full_name, entry.number), reason)
        if index < len(queue.entries):
            self._build_groups(repo, branch, queue, start=index)

    def _merge_group(self, repo: Repo, branch: str, queue: Queue) -> None:
        tip = gitops.resolve(repo.path, f"refs/heads/{branch}")
        assert tip is not None
        if tip != queue.entries[0].base_sha:  # the branch moved under the queue: GitHub rebuilds it
            self._build_groups(repo, branch, queue, start=0)
            return
        entry = queue.entries.pop(0)
        pr = self.pull(repo.full_name, entry.number)
        gitops.update_ref(repo.path, f"refs/heads/{branch}", entry.head_sha, tip)
        pr.state, pr.merged, pr.merged_by = "closed", True, entry.enqueued_by
        pr.merged_at = pr.closed_at = pr.updated_at = now_iso()
        pr.merge_commit_sha = entry.head_sha
        self.ref_moved(repo, f"refs/heads/{branch}", tip, entry.head_sha, entry.enqueued_by)
        self._destroy(repo, entry, "merged")
        self._send(
            "pull_request",
            {"action": "closed", "number": pr.number, "pull_request": self.views.pull(pr)},
            repo,
            sender=entry.enqueued_by,
        )

    def head_moved(self, repo: Repo, pr: PullRequest) -> None:
        """A push to a queued PR's head: GitHub removes it from the queue."""
        queue = self.merge_queues.get((repo.full_name, pr.base_ref))
        index = (
            next((i for i, e in enumerate(queue.entries) if e.number == pr.number), None) if queue else None
        )
        if queue is not None and index is not None:
            self._drop(repo, pr.base_ref, queue, index, "UNKNOWN_REMOVAL")
