"""The one in-process fake GitHub for handler tests (the HTTP-level stand-in is bot/sim).

:class:`FakeGitHub` subclasses :class:`gidgethub.abc.GitHubAPI` and implements ``_request``.
Every call is recorded in ``calls``. An answer comes, in this order, from

1. ``responses``: canned answers keyed by ``(METHOD, path)`` (path without the host, query
   string kept, or without it); an answer may be ``(status, body)`` or a callable of the body;
2. the state: pull requests, issues, comments (with their authors), labels, reviews, check
   runs, statuses, permissions, team memberships, branches. Branches, pushes and merges are
   backed by a real bare repository (``repo``) when a test gives one;
3. otherwise an unknown GET fails loudly and an unknown write answers ``{}``.

Only endpoints of the shared REST subset (``fixtures/github/rest-subset.openapi.json``) are
served, so a handler cannot come to depend on one the simulator does not serve. Whatever the
bot writes is written as the App: comments, pull requests and issues it creates are a Bot's.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import gidgethub.abc
import gidgethub.sansio

from bot.git.rewrite import merge
from tests.support.gitrepo import GitRepo

BOT = "gitops-bot[bot]"
BOT_USER = {"login": BOT, "type": "Bot"}
ROLE_PERMISSION = {"maintain": "write", "triage": "read"}  # GitHub's permission for a role_name
JSON = {"content-type": "application/json; charset=utf-8"}

Answer = tuple[int, Any]
_REPO = r"/repos/(?P<repo>[^/]+/[^/]+)"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_event(
    event: str, payload: dict[str, Any], delivery_id: str = "test-delivery"
) -> gidgethub.sansio.Event:
    return gidgethub.sansio.Event(payload, event=event, delivery_id=delivery_id)


@dataclass
class Call:
    method: str
    path: str
    body: Any


@dataclass
class FakeGitHub(gidgethub.abc.GitHubAPI):
    responses: dict[tuple[str, str], Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    repo: GitRepo | None = None
    full_name: str = "org/fleet"
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    runs_by_sha: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)  # login -> role_name
    pr_commits: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    teams: dict[str, set[str]] = field(default_factory=dict)  # "org/slug" -> logins
    next_id: int = 100
    remaining: int = 5000

    def __post_init__(self) -> None:
        super().__init__("gitops-bot-tests", oauth_token="test-token")

    # --- test helpers ---
    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method != "GET"]

    def writes_to(self, pattern: str) -> list[Call]:
        return [c for c in self.writes() if re.search(pattern, c.path)]

    def head_sha(self, branch: str) -> str:
        assert self.repo is not None, "this fake has no repository"
        return self.repo.sha(f"refs/heads/{branch}")

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

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
            "head": {"ref": head, "sha": self.head_sha(head) if self.repo else "0" * 40},
            "base": {"ref": base},
            "user": {"login": user, "type": "Bot" if user == BOT else "User"},
            "labels": [],
        }
        self.pulls[number] = pr
        return pr

    def new_issue(self, body: str, user: str = BOT, kind: str = "Bot", labels: Any = ()) -> dict[str, Any]:
        number = 1000 + len(self.issues)
        issue = {
            "number": number,
            "title": "",
            "body": body,
            "state": "open",
            "html_url": f"https://github.com/{self.full_name}/issues/{number}",
            "user": {"login": user, "type": kind},
            "labels": [{"name": name} for name in labels],
            "created_at": now_iso(),
        }
        self.issues[number] = issue
        return issue

    def merge_pr(self, number: int) -> dict[str, Any]:
        assert self.repo is not None, "this fake has no repository"
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
            "id": self._new_id(),
            "context": context,
            "state": state,
            "description": description,
            "updated_at": updated_at or now_iso(),
        }
        self.statuses.setdefault(sha, []).insert(0, entry)

    def pr_by_head(self, branch: str) -> dict[str, Any] | None:
        return next((p for p in self.pulls.values() if p["head"]["ref"] == branch), None)

    # --- the API ---
    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        parts = urlsplit(url)
        query = f"?{parts.query}" if parts.query else ""
        data = json.loads(body) if body else None
        self.calls.append(Call(method, parts.path + query, data))
        self.remaining -= 1
        out_headers = {
            **JSON,
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": "4102444800",
        }
        canned = self.responses.get((method, parts.path + query), self.responses.get((method, parts.path)))
        if canned is not None or (method, parts.path) in self.responses:
            status, answer = canned if isinstance(canned, tuple) else (200, canned)
            if callable(answer):
                answer = answer(data)
            return status, out_headers, json.dumps(answer).encode()
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        routed = self._route(method, unquote(parts.path), q, data)
        if routed is None:
            if method == "GET":
                raise AssertionError(f"unexpected GitHub call: {method} {parts.path}{query}")
            return (201 if method == "POST" else 200), out_headers, b"{}"
        status, answer = routed
        if isinstance(answer, Page):
            answer, link = answer.slice(parts, q)
            if link:
                out_headers["link"] = link
        return status, out_headers, b"" if status == 204 else json.dumps(answer).encode()

    async def sleep(self, seconds: float) -> None:
        return None

    def _refresh(self, pr: dict[str, Any]) -> dict[str, Any]:
        if pr["state"] == "open" and self.repo is not None:
            with contextlib.suppress(subprocess.CalledProcessError):
                pr["head"]["sha"] = self.head_sha(pr["head"]["ref"])
        return json.loads(json.dumps(pr))

    def _issue(self, number: int) -> dict[str, Any] | None:
        return self.pulls.get(number) or self.issues.get(number)

    def _route(self, method: str, path: str, q: dict[str, str], data: Any) -> Answer | None:
        for pattern, route in self._ROUTES:
            if m := re.fullmatch(pattern if pattern.startswith("/orgs/") else _REPO + pattern, path):
                answer = route(self, method, q, data, **m.groupdict())
                if answer is not None:
                    return answer
        return None

    # --- routes: each answers (status, body) or None when it does not serve the call ---
    def _repository(self, method: str, q: dict[str, str], data: Any, repo: str) -> Answer | None:
        return (200, {"full_name": repo, "default_branch": "main"}) if method == "GET" else None

    def _pull_list(self, method: str, q: dict[str, str], data: Any, repo: str) -> Answer | None:
        if method == "POST":
            head, base = data["head"], data["base"]
            if any(
                p["head"]["ref"] == head and p["base"]["ref"] == base and p["state"] == "open"
                for p in self.pulls.values()
            ):
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"message": "A pull request already exists"}],
                }
            return 201, self.open_pr(head, base, data["title"], data.get("body", ""), user=BOT)
        if method != "GET":
            return None
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
        return 200, out[: int(q.get("per_page", 30))]

    def _pull(self, method: str, q: dict[str, str], data: Any, repo: str, n: str) -> Answer | None:
        pr = self.pulls.get(int(n))
        if pr is None:
            return (404, {"message": "Not Found"}) if method == "GET" else None
        if method == "PATCH":
            pr.update({k: v for k, v in data.items() if k in ("title", "body", "state")})
        return 200, self._refresh(pr)

    def _pull_merge(self, method: str, q: dict[str, str], data: Any, repo: str, n: str) -> Answer | None:
        pr = self.pulls.get(int(n))
        if method != "PUT" or pr is None:
            return None
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

    def _pull_commits(self, method: str, q: dict[str, str], data: Any, repo: str, n: str) -> Answer | None:
        commits = self.pr_commits.get(int(n), [])
        return 200, [{"sha": sha, "commit": {"message": message}} for sha, message in commits]

    def _reviews(self, method: str, q: dict[str, str], data: Any, repo: str, n: str) -> Answer | None:
        number = int(n)
        if number in self.pulls:  # GitHub records the head a review was given on
            for review in self.reviews.get(number, []):
                review.setdefault("commit_id", self._refresh(self.pulls[number])["head"]["sha"])
        return 200, self.reviews.get(number, [])

    def _membership(
        self, method: str, q: dict[str, str], data: Any, org: str, team: str, login: str
    ) -> Answer | None:
        if login in self.teams.get(f"{org}/{team}", set()):
            return 200, {"state": "active", "role": "member"}
        return 404, {"message": "Not Found"}

    def _permission(self, method: str, q: dict[str, str], data: Any, repo: str, login: str) -> Answer | None:
        role = self.permissions.get(login, "read")
        return 200, {"permission": ROLE_PERMISSION.get(role, role), "role_name": role}

    def _issue_list(self, method: str, q: dict[str, str], data: Any, repo: str) -> Answer | None:
        if method == "POST":
            issue = self.new_issue(data["body"], labels=data.get("labels") or [])
            issue["title"] = data["title"]
            return 201, issue
        wanted = set(filter(None, q.get("labels", "").split(",")))
        return 200, [
            i
            for i in self.issues.values()
            if (q.get("state") == "all" or i["state"] == q.get("state", "open"))
            and wanted <= {label["name"] for label in i["labels"]}
        ]

    def _issue_one(self, method: str, q: dict[str, str], data: Any, repo: str, n: str) -> Answer | None:
        issue = self._issue(int(n))
        if issue is None:
            return None
        if method == "PATCH":
            issue.update({k: v for k, v in data.items() if k in ("title", "body", "state")})
        return 200, issue

    def _labels(
        self, method: str, q: dict[str, str], data: Any, repo: str, n: str, name: str | None = None
    ) -> Answer | None:
        issue = self._issue(int(n))
        if issue is None:
            return None
        if method == "POST" and name is None:
            for label in data["labels"]:
                if label not in [lbl["name"] for lbl in issue["labels"]]:
                    issue["labels"].append({"name": label})
            return 200, issue["labels"]
        if method == "DELETE" and name is not None:
            kept = [lbl for lbl in issue["labels"] if lbl["name"] != name]
            if len(kept) == len(issue["labels"]):
                return 404, {"message": "Label does not exist"}
            issue["labels"] = kept
            return 200, kept
        return None

    def _comment_list(self, method: str, q: dict[str, str], data: Any, repo: str, n: str) -> Answer | None:
        number = int(n)
        if method == "POST":
            cid = self._new_id()
            self.comments[cid] = {
                "id": cid,
                "issue": number,
                "body": data["body"],
                "html_url": f"https://github.com/{repo}/issues/{number}#issuecomment-{cid}",
                "user": dict(BOT_USER),  # every write here is the bot's
            }
            return 201, self.comments[cid]
        return 200, Page([c for c in self.comments.values() if c["issue"] == number], "comments")

    def _comment(self, method: str, q: dict[str, str], data: Any, repo: str, cid: str) -> Answer | None:
        comment = self.comments.get(int(cid))
        if comment is None:
            return None
        if method == "PATCH":
            comment["body"] = data["body"]
            return 200, comment
        if method == "DELETE":
            del self.comments[int(cid)]
            return 204, None
        return 200, comment

    def _status(self, method: str, q: dict[str, str], data: Any, repo: str, sha: str) -> Answer | None:
        """GitHub's combined status: the latest status per context; failure if any failed or erred,
        pending if any is pending (or there are none), success when all succeeded."""
        latest: dict[str, dict[str, Any]] = {}
        for entry in self.statuses.get(sha, []):  # newest first
            latest.setdefault(str(entry["context"]), entry)
        states = {str(e["state"]) for e in latest.values()}
        state = (
            "failure"
            if states & {"failure", "error"}
            else "pending"
            if not states or "pending" in states
            else "success"
        )
        return 200, {"state": state, "statuses": list(latest.values()), "sha": sha}

    def _runs_of(self, method: str, q: dict[str, str], data: Any, repo: str, sha: str) -> Answer | None:
        runs = [c for c in self.check_runs.values() if c["head_sha"] == sha]
        runs += self.runs_by_sha.get(sha, [])
        if "check_name" in q:
            runs = [c for c in runs if c["name"] == q["check_name"]]
        return 200, Page(runs, "check_runs")

    def _run_create(self, method: str, q: dict[str, str], data: Any, repo: str) -> Answer | None:
        if method != "POST":
            return None
        rid = self._new_id()
        output = data.get("output", {})
        self.check_runs[rid] = {
            "id": rid,
            "conclusion": None,
            "html_url": f"https://github.com/{repo}/runs/{rid}",
            **data,
            "output": {**output, "annotations_count": len(output.get("annotations", []))},
        }
        return 201, self.check_runs[rid]

    def _run_update(self, method: str, q: dict[str, str], data: Any, repo: str, rid: str) -> Answer | None:
        run = self.check_runs.get(int(rid))
        if method != "PATCH" or run is None:
            return None
        count = run.get("output", {}).get("annotations_count", 0)
        output = data.get("output", {})
        run.update({k: v for k, v in data.items() if k != "output"})
        if "output" in data:
            run["output"] = {**output, "annotations_count": count + len(output.get("annotations", []))}
        if data.get("status", "completed") != "completed":
            run["conclusion"] = None
        return 200, run

    def _branch(self, method: str, q: dict[str, str], data: Any, repo: str, name: str) -> Answer | None:
        if method != "GET" or self.repo is None:
            return None
        return 200, {"name": name, "commit": {"sha": self.head_sha(name)}}

    _ROUTES: tuple[tuple[str, Any], ...] = (
        ("", _repository),
        ("/pulls", _pull_list),
        (r"/pulls/(?P<n>\d+)", _pull),
        (r"/pulls/(?P<n>\d+)/merge", _pull_merge),
        (r"/pulls/(?P<n>\d+)/commits", _pull_commits),
        (r"/pulls/(?P<n>\d+)/reviews", _reviews),
        (r"/orgs/(?P<org>[^/]+)/teams/(?P<team>[^/]+)/memberships/(?P<login>[^/]+)", _membership),
        (r"/collaborators/(?P<login>[^/]+)/permission", _permission),
        ("/issues", _issue_list),
        (r"/issues/(?P<n>\d+)", _issue_one),
        (r"/issues/(?P<n>\d+)/labels(?:/(?P<name>.+))?", _labels),
        (r"/issues/(?P<n>\d+)/comments", _comment_list),
        (r"/issues/comments/(?P<cid>\d+)", _comment),
        (r"/commits/(?P<sha>[0-9a-f]+)/status", _status),
        (r"/commits/(?P<sha>[0-9a-f]+)/check-runs", _runs_of),
        ("/check-runs", _run_create),
        (r"/check-runs/(?P<rid>\d+)", _run_update),
        ("/branches/(?P<name>.+)", _branch),
    )


@dataclass
class Page:
    """A list GitHub pages (``per_page``, ``page``, a ``Link`` header to the next page)."""

    items: list[dict[str, Any]]
    key: str  # "check_runs" answers {"total_count", "check_runs"}; "comments" answers a bare list

    def slice(self, parts: Any, q: dict[str, str]) -> tuple[Any, str]:
        per_page, page = min(100, int(q.get("per_page", 30))), int(q.get("page", 1))
        chunk = self.items[(page - 1) * per_page : page * per_page]
        link = ""
        if page * per_page < len(self.items):
            next_query = urlencode({**q, "page": page + 1})
            link = f'<{parts.scheme}://{parts.netloc}{parts.path}?{next_query}>; rel="next"'
        if self.key == "check_runs":
            return {"total_count": len(self.items), "check_runs": chunk}, link
        return chunk, link
