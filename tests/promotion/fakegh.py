"""A small stateful GitHub for handler tests, on top of tests.fakes.RecordingGitHub.

Only endpoints of the shared REST subset (``shared/github/rest-subset.openapi.json``) exist
here, so the handler cannot come to depend on one the simulator does not serve.

It keeps pull requests, comments, labels, check runs, statuses and reviews in memory and
backs branches with a real bare repository: pushes land there, ``PUT .../merge`` makes a real
merge commit. Every call is still recorded; an unknown GET still fails loudly.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from bot.git.files import GIT_ENV
from bot.git.rewrite import merge
from tests.fakes import Call, RecordingGitHub
from tests.promotion.gitrepo import BareRepo

BOT = "gitops-bot[bot]"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeRepoAccess:
    """RepoAccess over a local bare "remote": git_dir fetches into a mirror, push pushes back."""

    remote: Path
    mirror: Path
    pushes: list[tuple[str, ...]] = field(default_factory=list)
    fetches: int = 0

    async def git_dir(self, full_name: str, *, refs: Sequence[str] = ()) -> Path:
        if not self.mirror.exists():
            subprocess.run(["git", "init", "-q", "--bare", str(self.mirror)], check=True, env=GIT_ENV)
        subprocess.run(
            [
                "git",
                f"--git-dir={self.mirror}",
                "fetch",
                "-q",
                "--prune",
                str(self.remote),
                "+refs/heads/*:refs/heads/*",
            ],
            check=True,
            env=GIT_ENV,
            capture_output=True,
        )
        self.fetches += 1
        return self.mirror

    async def push(self, full_name: str, refspecs: Sequence[str], *, force: bool = False) -> None:
        specs = [("+" if force else "") + s for s in refspecs]
        subprocess.run(
            ["git", f"--git-dir={self.mirror}", "push", "-q", str(self.remote), *specs],
            check=True,
            env=GIT_ENV,
            capture_output=True,
        )
        self.pushes.append(tuple(specs))


@dataclass
class FakeGitHub(RecordingGitHub):
    repo: BareRepo | None = None
    full_name: str = "org/fleet"
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    runs_by_sha: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)
    pr_commits: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    teams: dict[str, set[str]] = field(default_factory=dict)  # "org/slug" -> logins
    _next: int = 1

    # --- test helpers ---
    def _id(self) -> int:
        self._next += 1
        return self._next

    def head_sha(self, branch: str) -> str:
        assert self.repo is not None
        return self.repo.sha(f"refs/heads/{branch}")

    def open_pr(
        self, head: str, base: str, title: str, body: str = "", user: str = "alice"
    ) -> dict[str, Any]:
        number = len(self.pulls) + 1
        pr = {
            "number": number,
            "title": title,
            "body": body,
            "state": "open",
            "merged": False,
            "merged_at": None,
            "merge_commit_sha": None,
            "commits": 1,
            "html_url": f"https://github.com/{self.full_name}/pull/{number}",
            "head": {"ref": head, "sha": self.head_sha(head)},
            "base": {"ref": base},
            "user": {"login": user},
            "labels": [],
        }
        self.pulls[number] = pr
        return pr

    def merge_pr(self, number: int) -> dict[str, Any]:
        assert self.repo is not None
        pr = self.pulls[number]
        base = pr["base"]["ref"]
        result = merge(
            self.repo.path,
            f"refs/heads/{pr['head']['ref']}",
            f"refs/heads/{base}",
            message=f"Merge pull request #{number} from {pr['head']['ref']}\n\n{pr['title']}",
        )
        assert result.sha is not None, result.conflicts
        self.repo.git("update-ref", f"refs/heads/{base}", result.sha)
        pr.update(state="closed", merged=True, merged_at=now_iso(), merge_commit_sha=result.sha)
        return pr

    def set_status(
        self, sha: str, context: str, state: str, updated_at: str | None = None, description: str = ""
    ) -> None:
        entry = {
            "context": context,
            "state": state,
            "description": description,
            "updated_at": updated_at or now_iso(),
        }
        self.statuses.setdefault(sha, []).insert(0, entry)

    def pr_by_head(self, branch: str) -> dict[str, Any] | None:
        return next((p for p in self.pulls.values() if p["head"]["ref"] == branch), None)

    def writes_to(self, pattern: str) -> list[Call]:
        return [c for c in self.writes() if re.search(pattern, c.path)]

    # --- the API ---
    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        parts = urlsplit(url)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        data = json.loads(body) if body else None
        self.calls.append(Call(method, path + (f"?{parts.query}" if parts.query else ""), data))
        status, answer = self._route(method, path, query, data)
        payload = json.dumps(answer).encode()
        return status, {"content-type": "application/json; charset=utf-8"}, payload

    def _refresh(self, pr: dict[str, Any]) -> dict[str, Any]:
        if pr["state"] == "open":
            with contextlib.suppress(subprocess.CalledProcessError):
                pr["head"]["sha"] = self.head_sha(pr["head"]["ref"])
        return json.loads(json.dumps(pr))

    def _route(self, method: str, path: str, q: dict[str, str], data: Any) -> tuple[int, Any]:
        r = f"/repos/{self.full_name}"
        if method == "GET" and path == r:
            return 200, {"full_name": self.full_name, "default_branch": "main"}
        if path == f"{r}/pulls" and method == "GET":
            out = []
            for p in sorted(self.pulls.values(), key=lambda p: p["number"]):
                state = q.get("state", "open")
                if state != "all" and p["state"] != state:
                    continue
                if "base" in q and p["base"]["ref"] != q["base"]:
                    continue
                if "head" in q and p["head"]["ref"] != q["head"].split(":", 1)[1]:
                    continue
                out.append(self._refresh(p))
            if q.get("direction") == "desc":
                out.reverse()
            out = out[: int(q.get("per_page", 30))]
            return 200, out
        if path == f"{r}/pulls" and method == "POST":
            head, base = data["head"], data["base"]
            if any(
                p["head"]["ref"] == head and p["base"]["ref"] == base and p["state"] == "open"
                for p in self.pulls.values()
            ):
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"message": "A pull request already exists"}],
                }
            pr = self.open_pr(head, base, data["title"], data.get("body", ""), user=BOT)
            return 201, pr
        m = re.fullmatch(rf"{r}/pulls/(\d+)", path)
        if m:
            pr = self.pulls.get(int(m.group(1)))
            if pr is None:
                return 404, {"message": "Not Found"}
            if method == "PATCH":
                pr.update({k: v for k, v in data.items() if k in ("title", "body", "state")})
            return 200, self._refresh(pr)
        m = re.fullmatch(rf"{r}/pulls/(\d+)/merge", path)
        if m and method == "PUT":
            pr = self.pulls[int(m.group(1))]
            if pr["state"] != "open":
                return 405, {"message": "Pull Request is not mergeable"}
            if data.get("sha") and data["sha"] != self.head_sha(pr["head"]["ref"]):
                return 409, {"message": "Head branch was modified. Review and try the merge again."}
            self.merge_pr(pr["number"])
            return 200, {
                "merged": True,
                "sha": pr["merge_commit_sha"],
                "message": "Pull Request successfully merged",
            }
        m = re.fullmatch(rf"{r}/pulls/(\d+)/commits", path)
        if m:
            return 200, [
                {"sha": c, "commit": {"message": m2}} for c, m2 in self.pr_commits.get(int(m.group(1)), [])
            ]
        m = re.fullmatch(rf"{r}/pulls/(\d+)/reviews", path)
        if m:
            number = int(m.group(1))
            for review in self.reviews.get(number, []):  # GitHub records the head a review was given on
                review.setdefault("commit_id", self._refresh(self.pulls[number])["head"]["sha"])
            return 200, self.reviews.get(number, [])
        m = re.fullmatch(r"/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)", path)
        if m:
            if m.group(3) in self.teams.get(f"{m.group(1)}/{m.group(2)}", set()):
                return 200, {"state": "active", "role": "member"}
            return 404, {"message": "Not Found"}
        m = re.fullmatch(rf"{r}/collaborators/([^/]+)/permission", path)
        if m:
            return 200, {"permission": self.permissions.get(m.group(1), "read")}
        m = re.fullmatch(rf"{r}/issues/(\d+)/labels", path)
        if m and method == "POST":
            pr = self.pulls[int(m.group(1))]
            for name in data["labels"]:
                if name not in [lbl["name"] for lbl in pr["labels"]]:
                    pr["labels"].append({"name": name})
            return 200, pr["labels"]
        m = re.fullmatch(rf"{r}/issues/(\d+)/labels/(.+)", path)
        if m and method == "DELETE":
            pr = self.pulls[int(m.group(1))]
            kept = [lbl for lbl in pr["labels"] if lbl["name"] != m.group(2)]
            if len(kept) == len(pr["labels"]):
                return 404, {"message": "Label does not exist"}
            pr["labels"] = kept
            return 200, kept
        m = re.fullmatch(rf"{r}/issues/(\d+)/comments", path)
        if m:
            number = int(m.group(1))
            if method == "POST":
                cid = self._id()
                self.comments[cid] = {
                    "id": cid,
                    "issue": number,
                    "body": data["body"],
                    "html_url": f"#c{cid}",
                    "user": {"login": BOT, "type": "Bot"},  # every write here is the bot's
                }
                return 201, self.comments[cid]
            return 200, [c for c in self.comments.values() if c["issue"] == number]
        m = re.fullmatch(rf"{r}/issues/comments/(\d+)", path)
        if m and method == "PATCH":
            self.comments[int(m.group(1))]["body"] = data["body"]
            return 200, self.comments[int(m.group(1))]
        m = re.fullmatch(rf"{r}/commits/([0-9a-f]+)/status", path)
        if m:
            sts = self.statuses.get(m.group(1), [])
            return 200, {"state": "pending", "statuses": sts, "sha": m.group(1)}
        m = re.fullmatch(rf"{r}/commits/([0-9a-f]+)/check-runs", path)
        if m:
            runs = [c for c in self.check_runs.values() if c["head_sha"] == m.group(1)]
            runs += self.runs_by_sha.get(m.group(1), [])
            if "check_name" in q:
                runs = [c for c in runs if c["name"] == q["check_name"]]
            return 200, {"total_count": len(runs), "check_runs": runs}
        if path == f"{r}/check-runs" and method == "POST":
            cid = self._id()
            self.check_runs[cid] = {"id": cid, "conclusion": None, **data}
            return 201, self.check_runs[cid]
        m = re.fullmatch(rf"{r}/check-runs/(\d+)", path)
        if m and method == "PATCH":
            run = self.check_runs[int(m.group(1))]
            run.update(data)
            if data.get("status") != "completed":
                run["conclusion"] = None
            return 200, run
        if method == "GET":
            raise AssertionError(f"unexpected GitHub call: {method} {path}")
        raise AssertionError(f"unexpected GitHub write: {method} {path}")
