"""Issue-side routes of pull requests: comments, reactions and labels."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.sim.core import Actor, Answer, ApiError, SimCore, check_comment_length, not_found
from bot.sim.state import (
    IssueComment,
    Label,
    Repo,
    now_iso,
    rank,
)


class IssueRoutes(SimCore):
    """Issue-side routes of pull requests: comments, reactions and labels."""

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
        pr = self.world.pulls[repo.full_name][c.issue_number]
        payload: dict[str, Any] = {
            "action": action,
            "issue": self.views.issue(pr),
            "comment": self.views.comment(c),
        }
        if changes is not None:
            payload["changes"] = changes
        self._send("issue_comment", payload, repo, sender=sender)

    async def op_issues__list_comments(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        self._pr(repo, p["issue_number"])
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
        pr = self._pr(repo, p["issue_number"])
        check_comment_length(b["body"])
        c = IssueComment(
            self.world.ids.next("comment"), repo.full_name, pr.number, a.login or self.bot_login, b["body"]
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
        pr = self._pr(repo, p["issue_number"])
        raw = b.get("labels", []) if isinstance(b, dict) else (b or [])
        names = [x if isinstance(x, str) else x.get("name", "") for x in raw]
        for name in filter(None, names):
            if name not in repo.labels:
                repo.labels[name] = Label(self.world.ids.next("label"), name)
            if name not in pr.labels:
                pr.labels.append(name)
                self._send(
                    "pull_request",
                    {
                        "action": "labeled",
                        "number": pr.number,
                        "label": self.views.label(repo.labels[name], repo),
                        "pull_request": self.views.pull(pr),
                    },
                    repo,
                    sender=a.login,
                )
        return Answer(200, [self.views.label(repo.labels[n], repo) for n in pr.labels])

    async def op_issues__remove_label(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "triage")
        pr = self._pr(repo, p["issue_number"])
        if p["name"] not in pr.labels:
            raise ApiError(404, "Label does not exist")
        pr.labels.remove(p["name"])
        self._send(
            "pull_request",
            {
                "action": "unlabeled",
                "number": pr.number,
                "label": self.views.label(repo.labels[p["name"]], repo),
                "pull_request": self.views.pull(pr),
            },
            repo,
            sender=a.login,
        )
        return Answer(200, [self.views.label(repo.labels[n], repo) for n in pr.labels])

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
