"""Check-run routes and the check suites that gather them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.sim import gitops
from bot.sim.core import Actor, Answer, ApiError, SimCore, not_found
from bot.sim.state import (
    CheckRun,
    CheckSuite,
    Repo,
    now_iso,
)


class CheckRoutes(SimCore):
    """Check-run routes and the check suites that gather them."""

    def _suite_for(self, repo: Repo, sha: str) -> CheckSuite:
        for s in self.world.suites.values():
            if s.repo == repo.full_name and s.head_sha == sha and s.app_id == self.world.app_id:
                return s
        branch = next(
            (
                r.removeprefix("refs/heads/")
                for r, v in gitops.refs(repo.path).items()
                if v == sha and r.startswith("refs/heads/")
            ),
            None,
        )
        suite = CheckSuite(self.world.ids.next("suite"), repo.full_name, sha, branch, self.world.app_id)
        self.world.suites[suite.id] = suite
        return suite

    def _apply_run(self, run: CheckRun, b: dict[str, Any]) -> None:
        for key in ("name", "details_url", "external_id", "started_at", "completed_at"):
            if key in b:
                setattr(run, key, b[key])
        if "status" in b:
            run.status = b["status"]
        if "conclusion" in b:
            run.conclusion = b["conclusion"]
            run.status = "completed"
        if run.status == "completed" and run.conclusion is None:
            raise ApiError(422, "Invalid request.\n\nconclusion is required when status is completed.")
        if run.status == "completed" and not run.completed_at:
            run.completed_at = now_iso()
        if run.status == "in_progress" and not run.started_at:
            run.started_at = now_iso()
        if b.get("output"):
            out = b["output"]
            run.output = {k: out.get(k, run.output.get(k)) for k in ("title", "summary", "text")}
            run.annotations.extend(out.get("annotations") or [])
        if "actions" in b:
            run.actions = b["actions"]

    def _settle_suite(self, repo: Repo, suite: CheckSuite, sender: str | None) -> None:
        runs = [r for r in self.world.runs.values() if r.suite_id == suite.id]
        if runs and all(r.status == "completed" for r in runs):
            order = [
                "action_required",
                "cancelled",
                "timed_out",
                "failure",
                "neutral",
                "skipped",
                "stale",
                "success",
            ]
            conclusion = min(
                (r.conclusion or "neutral" for r in runs), key=lambda c: order.index(c) if c in order else 0
            )
            changed = suite.status != "completed" or suite.conclusion != conclusion
            suite.status, suite.conclusion = "completed", conclusion
            suite.updated_at = now_iso()
            if changed:
                self._send(
                    "check_suite",
                    {"action": "completed", "check_suite": self.views.check_suite(suite)},
                    repo,
                    sender=sender,
                )
        elif runs:
            suite.status, suite.conclusion = "in_progress", None
        self.checks_changed(repo, suite.head_sha)

    async def op_checks__create(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "write")
        if a.kind != "installation":
            raise ApiError(403, "You must authenticate as a GitHub App to create a check run")
        sha = gitops.resolve(repo.path, b["head_sha"])
        if sha is None or sha != b["head_sha"]:
            raise ApiError(422, "Invalid request.\n\nNo commit found for SHA: " + b["head_sha"])
        suite = self._suite_for(repo, sha)
        run = CheckRun(
            self.world.ids.next("check_run"), repo.full_name, sha, b["name"], suite.id, self.world.app_id
        )
        self._apply_run(run, b)
        self.world.runs[run.id] = run
        self._send("check_run", {"action": "created", "check_run": self.views.check_run(run)}, repo)
        if run.status == "completed":
            self._send("check_run", {"action": "completed", "check_run": self.views.check_run(run)}, repo)
        self._settle_suite(repo, suite, None)
        return Answer(201, self.views.check_run(run))

    async def op_checks__update(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "write")
        run = self.world.runs.get(int(p["check_run_id"])) if p["check_run_id"].isdigit() else None
        if run is None or run.repo != repo.full_name:
            raise not_found()
        if a.kind != "installation":
            raise ApiError(403, "Only the GitHub App that created a check run can update it")
        was = run.status
        self._apply_run(run, b)
        if run.status == "completed" and was != "completed":
            self._send("check_run", {"action": "completed", "check_run": self.views.check_run(run)}, repo)
        self._settle_suite(repo, self.world.suites[run.suite_id], None)
        return Answer(200, self.views.check_run(run))

    async def op_checks__list_for_ref(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        sha = gitops.resolve(repo.path, p["ref"])
        if sha is None:
            raise not_found()
        runs = [r for r in self.world.runs.values() if r.repo == repo.full_name and r.head_sha == sha]
        q = req.query
        if q.get("check_name"):
            runs = [r for r in runs if r.name == q["check_name"]]
        if q.get("status"):
            runs = [r for r in runs if r.status == q["status"]]
        if q.get("app_id"):
            runs = [r for r in runs if str(r.app_id) == q["app_id"]]
        if q.get("filter", "latest") == "latest":
            latest: dict[str, CheckRun] = {}
            for r in sorted(runs, key=lambda r: r.id):
                latest[r.name] = r
            runs = list(latest.values())
        runs.sort(key=lambda r: r.id, reverse=True)
        chunk, headers = self._page(req, runs)
        return Answer(
            200, {"total_count": len(runs), "check_runs": [self.views.check_run(r) for r in chunk]}, headers
        )
