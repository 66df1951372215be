"""Pull request routes: list, open, edit, files, commits, reviews and merges with real git."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.sim import gitops
from bot.sim.core import Actor, Answer, ApiError, SimCore
from bot.sim.state import (
    PullRequest,
    Review,
    now_iso,
    rank,
)


class PullRoutes(SimCore):
    """Pull request routes: list, open, edit, files, commits, reviews and merges with real git."""

    async def op_pulls__list(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        q = req.query
        state = q.get("state", "open")
        prs = [pr for pr in self.world.pulls[repo.full_name].values() if state == "all" or pr.state == state]
        if q.get("head"):
            owner, _, branch = q["head"].partition(":")
            prs = [pr for pr in prs if pr.head_ref == branch and pr.head_repo.split("/")[0] == owner]
        if q.get("base"):
            prs = [pr for pr in prs if pr.base_ref == q["base"]]
        prs.sort(key=lambda pr: pr.number, reverse=q.get("direction", "desc") == "desc")
        chunk, headers = self._page(req, prs)
        return Answer(200, [self.views.pull(pr) for pr in chunk], headers)

    async def op_pulls__create(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "read")
        head_owner, _, head_branch = b["head"].rpartition(":")
        head_repo = repo if not head_owner or head_owner == repo.owner else self.fork_of(repo, head_owner)
        if head_repo is None:
            raise ApiError(
                422, "Validation Failed", [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
            )
        head_sha = gitops.resolve(head_repo.path, f"refs/heads/{head_branch}")
        if head_sha is not None and head_repo is not repo:
            gitops.fetch_objects(repo.path, head_repo.path, head_sha)
        base_sha = gitops.resolve(repo.path, f"refs/heads/{b['base']}")
        if head_sha is None or base_sha is None:
            field_name = "head" if head_sha is None else "base"
            raise ApiError(
                422,
                "Validation Failed",
                [{"resource": "PullRequest", "field": field_name, "code": "invalid"}],
            )
        for other in self.world.pulls[repo.full_name].values():
            if (
                other.state == "open"
                and other.head_ref == head_branch
                and other.head_repo == head_repo.full_name
                and other.base_ref == b["base"]
            ):
                raise ApiError(
                    422,
                    "Validation Failed",
                    [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {head_repo.owner}:{head_branch}.",
                        }
                    ],
                )
        if not gitops.rev_list(repo.path, base_sha, head_sha):
            raise ApiError(
                422,
                "Validation Failed",
                [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"No commits between {b['base']} and {head_branch}",
                    }
                ],
            )
        number = self.world.next_issue_number(repo.full_name)
        pr = PullRequest(
            number,
            self.world.ids.next("pull"),
            repo.full_name,
            b.get("title") or head_branch,
            b.get("body"),
            a.login or self.bot_login,
            head_branch,
            b["base"],
            head_sha,
            base_sha,
            head_repo.full_name,
            draft=bool(b.get("draft")),
            maintainer_can_modify=bool(b.get("maintainer_can_modify")),
        )
        self.world.pulls[repo.full_name][number] = pr
        self._pull_refs(repo, pr)
        self._send(
            "pull_request",
            {"action": "opened", "number": number, "pull_request": self.views.pull(pr)},
            repo,
            sender=pr.user,
        )
        return Answer(
            201, self.views.pull(pr), {"Location": f"{self.base_url}/repos/{repo.full_name}/pulls/{number}"}
        )

    async def op_pulls__get(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        return Answer(200, self.views.pull(self._pr(repo, p["pull_number"])))

    async def op_pulls__update(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "read")
        pr = self._pr(repo, p["pull_number"])
        if (
            a.kind == "user"
            and a.login != pr.user
            and rank(self.world.permission(repo, a.login or "")) < rank("write")
        ):
            raise ApiError(403, "You do not have permission to update this pull request")
        changes: dict[str, Any] = {}
        for key in ("title", "body"):
            if key in b and b[key] != getattr(pr, key):
                changes[key] = {"from": getattr(pr, key)}
                setattr(pr, key, b[key])
        if "base" in b and b["base"] != pr.base_ref:
            new_base = gitops.resolve(repo.path, f"refs/heads/{b['base']}")
            if new_base is None:
                raise ApiError(
                    422,
                    "Validation Failed",
                    [{"resource": "PullRequest", "field": "base", "code": "invalid"}],
                )
            changes["base"] = {"ref": {"from": pr.base_ref}, "sha": {"from": pr.base_sha}}
            pr.base_ref, pr.base_sha = b["base"], new_base
        pr.updated_at = now_iso()
        action = None
        if b.get("state") == "closed" and pr.state == "open":
            pr.state, pr.closed_at, action = "closed", now_iso(), "closed"
        elif b.get("state") == "open" and pr.state == "closed":
            if pr.merged:
                raise ApiError(
                    422,
                    "Validation Failed",
                    [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": "A merged pull request cannot be reopened",
                        }
                    ],
                )
            pr.state, pr.closed_at, action = "open", None, "reopened"
            pr.head_sha = gitops.resolve(repo.path, f"refs/heads/{pr.head_ref}") or pr.head_sha
        if action == "reopened" or "base" in changes:
            self._pull_refs(repo, pr)
        if changes:
            self._send(
                "pull_request",
                {
                    "action": "edited",
                    "number": pr.number,
                    "changes": changes,
                    "pull_request": self.views.pull(pr),
                },
                repo,
                sender=a.login,
            )
        if action:
            self._send(
                "pull_request",
                {"action": action, "number": pr.number, "pull_request": self.views.pull(pr)},
                repo,
                sender=a.login,
            )
        return Answer(200, self.views.pull(pr))

    async def op_pulls__list_files(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        pr = self._pr(repo, p["pull_number"])
        mb = gitops.merge_base(repo.path, pr.base_sha, pr.head_sha) or pr.base_sha
        files = gitops.changed_files(repo.path, mb, pr.head_sha)
        chunk, headers = self._page(req, files)
        return Answer(200, [self.views.file(repo, f, pr.head_sha) for f in chunk], headers)

    async def op_pulls__list_commits(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        pr = self._pr(repo, p["pull_number"])
        shas = gitops.rev_list(repo.path, pr.base_sha, pr.head_sha)
        chunk, headers = self._page(req, shas)
        return Answer(200, [self.views.commit(repo, s) for s in chunk], headers)

    async def op_pulls__list_reviews(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        pr = self._pr(repo, p["pull_number"])
        chunk, headers = self._page(req, pr.reviews)
        return Answer(200, [self.views.review(pr, r) for r in chunk], headers)

    async def op_pulls__create_review(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "read")
        pr = self._pr(repo, p["pull_number"])
        event = b.get("event")
        login = a.login or self.bot_login
        if event == "APPROVE" and login == pr.user:
            raise ApiError(422, "Unprocessable Entity", ["Can not approve your own pull request"])
        if event in ("REQUEST_CHANGES", "COMMENT") and not b.get("body"):
            verb = event.lower().replace("_", " ")
            raise ApiError(422, "Unprocessable Entity", [f"Review Can not {verb} without a body"])
        state = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}.get(
            event or "", "PENDING"
        )
        review = Review(
            self.world.ids.next("review"),
            login,
            state,
            b.get("body") or "",
            b.get("commit_id") or pr.head_sha,
            now_iso(),
        )
        pr.reviews.append(review)
        if login in pr.requested_reviewers:
            pr.requested_reviewers.remove(login)
        if state != "PENDING":
            self._send(
                "pull_request_review",
                {
                    "action": "submitted",
                    "review": self._review_hook(pr, review),
                    "pull_request": self.views.pull(pr),
                },
                repo,
                sender=login,
            )
        return Answer(200, self.views.review(pr, review))

    async def op_pulls__list_requested_reviewers(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        repo = self._repo(p, a)
        pr = self._pr(repo, p["pull_number"])
        return Answer(200, {"users": [self.views.user(u) for u in pr.requested_reviewers], "teams": []})

    async def op_pulls__merge(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "write")
        pr = self._pr(repo, p["pull_number"])
        b = b or {}
        if pr.state != "open":
            raise ApiError(405, "Pull Request is not mergeable")
        if b.get("sha") and b["sha"] != pr.head_sha:
            raise ApiError(409, "Head branch was modified. Review and try the merge again.")
        method = b.get("merge_method", "merge")
        who = self._person(a)
        base_now = gitops.resolve(repo.path, f"refs/heads/{pr.base_ref}")
        if base_now is None:
            raise ApiError(422, "Base branch was deleted")
        title = b.get("commit_title")
        if method == "merge":
            tree = gitops.merge_tree(repo.path, base_now, pr.head_sha)
            if tree is None:
                raise ApiError(405, "Pull Request is not mergeable")
            msg = title or f"Merge pull request #{pr.number} from {pr.head_repo.split('/')[0]}/{pr.head_ref}"
            msg += "\n\n" + (b.get("commit_message") or pr.title) + "\n"
            sha = gitops.commit_tree(repo.path, tree, [base_now, pr.head_sha], msg, who, who)
        elif method == "squash":
            tree = gitops.merge_tree(repo.path, base_now, pr.head_sha)
            if tree is None:
                raise ApiError(405, "Pull Request is not mergeable")
            msg = (title or f"{pr.title} (#{pr.number})") + "\n\n" + (b.get("commit_message") or "") + "\n"
            author_info = gitops.commit_info(repo.path, pr.head_sha).author
            author = gitops.Person(author_info.name, author_info.email, "")
            sha = gitops.commit_tree(repo.path, tree, [base_now], msg, author, who)
        else:
            sha = base_now
            for commit in gitops.rev_list(repo.path, pr.base_sha, pr.head_sha):
                info = gitops.commit_info(repo.path, commit)
                if len(info.parents) > 1:
                    continue
                tree = gitops.cherry_pick_tree(repo.path, sha, commit)
                if tree is None:
                    raise ApiError(405, "This branch can't be rebased")
                sha = gitops.commit_tree(repo.path, tree, [sha], info.message, info.author, who)
        gitops.update_ref(repo.path, f"refs/heads/{pr.base_ref}", sha, base_now)
        pr.state, pr.merged, pr.merged_by = "closed", True, a.login or self.bot_login
        pr.merged_at = pr.closed_at = pr.updated_at = now_iso()
        pr.merge_commit_sha = sha
        self.ref_moved(repo, f"refs/heads/{pr.base_ref}", base_now, sha, a.login or self.bot_login)
        self._send(
            "pull_request",
            {"action": "closed", "number": pr.number, "pull_request": self.views.pull(pr)},
            repo,
            sender=a.login,
        )
        return Answer(200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"})
