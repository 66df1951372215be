"""Issues: plain issues (create, get, update, list) and the issue side of every issue or pull request:
comments, reactions and labels. Issue and pull request numbers share one sequence per repository,
and a pull request is an issue too (with a ``pull_request`` key), as on GitHub."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from bot.sim.core import Actor, Answer, ApiError, SimCore, check_comment_length, not_found
from bot.sim.state import (
    Issue,
    IssueComment,
    Label,
    PullRequest,
    Repo,
    now_iso,
    rank,
)

CLOSE_REASONS = ("completed", "not_planned", "duplicate")
SORT_KEYS = {"created": "created_at", "updated": "updated_at", "comments": "comments"}


def _invalid(field: str, code: str = "invalid") -> ApiError:
    return ApiError(422, "Validation Failed", [{"resource": "Issue", "field": field, "code": code}])


def _parse_since(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _invalid("since") from exc


class IssueRoutes(SimCore):
    """Plain issues, and the issue side of every issue or pull request: comments, reactions, labels."""

    def _item(self, repo: Repo, number: str) -> PullRequest | Issue:
        """The pull request or plain issue numbered ``number``."""
        n = int(number) if number.isdigit() else -1
        item = self.world.pulls[repo.full_name].get(n) or self.world.issues.get(repo.full_name, {}).get(n)
        if item is None:
            raise not_found()
        return item

    def _item_event(
        self, repo: Repo, item: PullRequest | Issue, action: str, sender: str | None, **extra: Any
    ) -> None:
        """``pull_request`` for a pull request, ``issues`` for a plain issue."""
        if isinstance(item, PullRequest):
            payload = {"action": action, "number": item.number, "pull_request": self.views.pull(item)}
            self._send("pull_request", {**payload, **extra}, repo, sender=sender)
        else:
            payload = {"action": action, "issue": self.views.issue(item)}
            self._send("issues", {**payload, **extra}, repo, sender=sender)

    @staticmethod
    def _label_names(raw: Any) -> list[str]:
        items = raw if isinstance(raw, list) else []
        names = [x if isinstance(x, str) else str(x.get("name") or "") for x in items]
        return list(dict.fromkeys(n.strip() for n in names if n.strip()))

    def _add_label(self, repo: Repo, item: PullRequest | Issue, name: str, sender: str | None) -> None:
        if name not in repo.labels:
            repo.labels[name] = Label(self.world.ids.next("label"), name)
        if name not in item.labels:
            item.labels.append(name)
            self._item_event(repo, item, "labeled", sender, label=self.views.label(repo.labels[name], repo))

    def _drop_label(self, repo: Repo, item: PullRequest | Issue, name: str, sender: str | None) -> None:
        item.labels.remove(name)
        self._item_event(repo, item, "unlabeled", sender, label=self.views.label(repo.labels[name], repo))

    def _may_push(self, repo: Repo, a: Actor, need: str = "triage") -> bool:
        return a.kind != "user" or rank(self.world.permission(repo, a.login or "")) >= rank(need)

    async def op_issues__create(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "read")
        title = str(b["title"])
        if not title.strip():
            raise _invalid("title", "missing_field")
        if b.get("body") is not None:
            check_comment_length(b["body"])
        issue = Issue(
            self.world.next_issue_number(repo.full_name),
            self.world.ids.next("issue"),
            repo.full_name,
            title,
            b.get("body"),
            a.login or self.bot_login,
        )
        self.world.issues.setdefault(repo.full_name, {})[issue.number] = issue
        self._item_event(repo, issue, "opened", issue.user)
        if self._may_push(repo, a, "write"):  # GitHub drops the labels of people without push access
            for name in self._label_names(b.get("labels")):
                self._add_label(repo, issue, name, issue.user)
        view = self.views.issue(issue)
        return Answer(201, view, {"Location": view["url"]})

    async def op_issues__get(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        return Answer(200, self.views.issue(self._item(repo, p["issue_number"])))

    async def op_issues__update(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "read")
        item = self._item(repo, p["issue_number"])
        b = b or {}
        if a.kind == "user" and a.login != item.user and not self._may_push(repo, a):
            raise ApiError(403, "You do not have permission to update this issue")
        if b.get("title") is not None and not str(b["title"]).strip():
            raise _invalid("title", "missing_field")
        if b.get("body") is not None:
            check_comment_length(b["body"])
        if b.get("state") == "closed" and b.get("state_reason") not in (None, *CLOSE_REASONS):
            raise _invalid("state_reason")
        if isinstance(item, PullRequest):
            fields = {k: b[k] for k in ("title", "body", "state") if b.get(k) is not None}
            if "title" in fields:
                fields["title"] = str(fields["title"])
            if fields:
                pull = {**p, "pull_number": p["issue_number"]}
                await self.op_pulls__update(req, pull, fields, a)  # type: ignore[attr-defined]
        else:
            self._update_issue(repo, item, b, a)
        if "labels" in b and self._may_push(repo, a):  # silently dropped otherwise, as on GitHub
            wanted = self._label_names(b["labels"] or [])
            for name in [n for n in item.labels if n not in wanted]:
                self._drop_label(repo, item, name, a.login)
            for name in wanted:
                self._add_label(repo, item, name, a.login)
        return Answer(200, self.views.issue(item))

    def _update_issue(self, repo: Repo, issue: Issue, b: dict[str, Any], a: Actor) -> None:
        changes: dict[str, Any] = {}
        if b.get("title") is not None and str(b["title"]) != issue.title:
            changes["title"] = {"from": issue.title}
            issue.title = str(b["title"])
        if "body" in b and b["body"] != issue.body:
            changes["body"] = {"from": issue.body}
            issue.body = b["body"]
        action = None
        if b.get("state") == "closed" and issue.state == "open":
            issue.state, issue.closed_at, issue.closed_by = "closed", now_iso(), a.login or self.bot_login
            issue.state_reason, action = b.get("state_reason") or "completed", "closed"
        elif b.get("state") == "open" and issue.state == "closed":
            issue.state, issue.closed_at, issue.closed_by = "open", None, None
            issue.state_reason, action = "reopened", "reopened"
        if changes or action:
            issue.updated_at = now_iso()
        if changes:
            self._item_event(repo, issue, "edited", a.login, changes=changes)
        if action:
            self._item_event(repo, issue, action, a.login)

    async def op_issues__list_for_repo(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        q = req.query
        state, sort, direction = q.get("state", "open"), q.get("sort", "created"), q.get("direction", "desc")
        for name, value, allowed in (
            ("state", state, ("open", "closed", "all")),
            ("sort", sort, tuple(SORT_KEYS)),
            ("direction", direction, ("asc", "desc")),
        ):
            if value not in allowed:
                raise _invalid(name)
        wanted = {n.strip().lower() for n in q.get("labels", "").split(",") if n.strip()}
        since = _parse_since(q["since"]) if q.get("since") else None
        creator = q.get("creator", "").lower()
        items: list[PullRequest | Issue] = [
            *self.world.pulls[repo.full_name].values(),
            *self.world.issues.get(repo.full_name, {}).values(),
        ]
        views = [
            self.views.issue(i)
            for i in items
            if state in ("all", i.state)
            and wanted <= {n.lower() for n in i.labels}
            and (not creator or i.user.lower() == creator)
            and (since is None or _parse_since(i.updated_at) >= since)
        ]
        views.sort(key=lambda v: (v[SORT_KEYS[sort]], v["number"]), reverse=direction == "desc")
        chunk, headers = self._page(req, views)
        return Answer(200, chunk, headers)

    def _writable_comment(self, p: dict[str, str], a: Actor, verb: str) -> tuple[Repo, IssueComment]:
        """The comment, if ``a`` may change it: its author, the App, or a user with write access."""
        repo = self._repo(p, a, "read")
        c = self._comment(repo, p["comment_id"])
        if (
            a.kind == "user"
            and a.login != c.user
            and rank(self.world.permission(repo, a.login or "")) < rank("write")
        ):
            raise ApiError(403, f"You can only {verb} your own comments")
        return repo, c

    def _comment(self, repo: Repo, cid: str) -> IssueComment:
        c = self.world.comments.get(int(cid)) if cid.isdigit() else None
        if c is None or c.repo != repo.full_name:
            raise not_found()
        return c

    def _comment_event(
        self,
        repo: Repo,
        c: IssueComment,
        action: str,
        sender: str | None,
        changes: dict[str, Any] | None = None,
    ) -> None:
        item = self._item(repo, str(c.issue_number))
        payload: dict[str, Any] = {
            "action": action,
            "issue": self.views.issue(item),
            "comment": self.views.comment(c),
        }
        if changes is not None:
            payload["changes"] = changes
        self._send("issue_comment", payload, repo, sender=sender)

    async def op_issues__list_comments(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        self._item(repo, p["issue_number"])
        comments = sorted(
            (
                c
                for c in self.world.comments.values()
                if c.repo == repo.full_name and c.issue_number == int(p["issue_number"])
            ),
            key=lambda c: c.id,
        )
        chunk, headers = self._page(req, comments)
        return Answer(200, [self.views.comment(c) for c in chunk], headers)

    async def op_issues__create_comment(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        repo = self._repo(p, a, "read")
        item = self._item(repo, p["issue_number"])
        check_comment_length(b["body"])
        c = IssueComment(
            self.world.ids.next("comment"), repo.full_name, item.number, a.login or self.bot_login, b["body"]
        )
        self.world.comments[c.id] = c
        self._comment_event(repo, c, "created", c.user)
        return Answer(201, self.views.comment(c), {"Location": self.views.comment(c)["url"]})

    async def op_issues__update_comment(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        repo, c = self._writable_comment(p, a, "edit")
        check_comment_length(b["body"])
        old = c.body
        c.body, c.updated_at = b["body"], now_iso()
        self._comment_event(repo, c, "edited", a.login, {"body": {"from": old}})
        return Answer(200, self.views.comment(c))

    async def op_issues__delete_comment(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        repo, c = self._writable_comment(p, a, "delete")
        self._comment_event(repo, c, "deleted", a.login)
        del self.world.comments[c.id]
        return Answer(204)

    async def op_issues__add_labels(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "triage")
        item = self._item(repo, p["issue_number"])
        raw = b.get("labels", []) if isinstance(b, dict) else (b or [])
        for name in self._label_names(raw):
            self._add_label(repo, item, name, a.login)
        return Answer(200, [self.views.label(repo.labels[n], repo) for n in item.labels])

    async def op_issues__remove_label(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "triage")
        item = self._item(repo, p["issue_number"])
        if p["name"] not in item.labels:
            raise ApiError(404, "Label does not exist")
        self._drop_label(repo, item, p["name"], a.login)
        return Answer(200, [self.views.label(repo.labels[n], repo) for n in item.labels])

    async def op_reactions__create_for_issue_comment(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        repo = self._repo(p, a, "read")
        c = self._comment(repo, p["comment_id"])
        login = a.login or self.bot_login
        for rid, who, content in c.reactions:
            if who == login and content == b["content"]:
                return Answer(200, self._reaction(rid, who, content))
        rid = self.world.ids.next("reaction")
        c.reactions.append((rid, login, b["content"]))
        return Answer(201, self._reaction(rid, login, b["content"]))

    def _reaction(self, rid: int, login: str, content: str) -> dict[str, Any]:
        return {
            "id": rid,
            "node_id": f"REA_{rid}",
            "user": self.views.user(login),
            "content": content,
            "created_at": now_iso(),
        }
