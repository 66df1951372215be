"""JSON views of the simulator's state, shaped like GitHub's REST objects and webhook payload parts.

The views carry the real values; the server then conforms them to the exact schema of the route or
webhook (see :mod:`bot.sim.schemas`), which drops fields a schema forbids and adds neutral values for
required fields the simulator does not model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.sim import gitops
from bot.sim.signatures import verification
from bot.sim.state import (
    CheckRun,
    CheckSuite,
    Issue,
    IssueComment,
    Label,
    PullRequest,
    Repo,
    Review,
    Status,
    World,
)


class Views:
    """Render state as GitHub JSON, with URLs under ``base_url``."""

    def __init__(self, world: World, base_url: str) -> None:
        self.world = world
        self.base = base_url.rstrip("/")
        self._verification_cache: dict[tuple[str, str, int], dict[str, Any]] = {}

    def user(self, login: str) -> dict[str, Any]:
        acct = self.world.account(login)
        kind = "Organization" if login in self.world.orgs else getattr(acct, "type", "User")
        uid = acct.id if acct else 0
        url = f"{self.base}/users/{login}"
        return {
            "login": login,
            "id": uid,
            "node_id": f"U_{uid}",
            "avatar_url": f"{self.base}/avatars/{login}",
            "gravatar_id": "",
            "url": url,
            "html_url": f"{self.base}/{login}",
            "followers_url": f"{url}/followers",
            "following_url": f"{url}/following{{/other_user}}",
            "gists_url": f"{url}/gists{{/gist_id}}",
            "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{url}/subscriptions",
            "organizations_url": f"{url}/orgs",
            "repos_url": f"{url}/repos",
            "events_url": f"{url}/events{{/privacy}}",
            "received_events_url": f"{url}/received_events",
            "type": kind,
            "site_admin": False,
            "user_view_type": "public",
        }

    def app(self) -> dict[str, Any]:
        w = self.world
        owner = next(iter(w.orgs), None) or next(iter(w.users), "sim")
        return {
            "id": w.app_id,
            "slug": w.app_slug,
            "node_id": f"A_{w.app_id}",
            "client_id": f"Iv1.sim{w.app_id}",
            "owner": self.user(owner),
            "name": w.app_name,
            "description": "gitops-bot on the local GitHub simulator",
            "external_url": self.base,
            "html_url": f"{self.base}/apps/{w.app_slug}",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "permissions": {
                "checks": "write",
                "contents": "write",
                "issues": "write",
                "metadata": "read",
                "pull_requests": "write",
                "statuses": "write",
                "members": "read",
            },
            "events": [
                "check_run",
                "check_suite",
                "issue_comment",
                "merge_group",
                "pull_request",
                "pull_request_review",
                "push",
                "status",
            ],
            "installations_count": len(w.installations),
        }

    def repo(self, repo: Repo) -> dict[str, Any]:
        url = f"{self.base}/repos/{repo.full_name}"
        html = f"{self.base}/{repo.full_name}"
        data: dict[str, Any] = {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self.user(repo.owner),
            "html_url": html,
            "description": None,
            "fork": repo.parent is not None,
            "url": url,
            "git_url": f"{html}.git",
            "clone_url": f"{html}.git",
            "ssh_url": f"{html}.git",
            "svn_url": html,
            "default_branch": repo.default_branch,
            "visibility": "private" if repo.private else "public",
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
            "pushed_at": repo.created_at,
            "archived": False,
            "disabled": False,
            "has_issues": True,
            "has_projects": False,
            "has_wiki": False,
            "has_pages": False,
            "has_downloads": False,
            "has_discussions": False,
            "is_template": False,
            "allow_merge_commit": True,
            "allow_squash_merge": True,
            "allow_rebase_merge": True,
            "topics": [],
            "size": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "forks_count": 0,
            "open_issues_count": sum(
                1 for p in self.world.pulls.get(repo.full_name, {}).values() if p.state == "open"
            ),
            "forks": 0,
            "open_issues": 0,
            "watchers": 0,
            "language": None,
            "homepage": None,
            "license": None,
            "mirror_url": None,
        }
        for name in (
            "archive",
            "assignees",
            "blobs",
            "branches",
            "collaborators",
            "comments",
            "commits",
            "compare",
            "contents",
            "contributors",
            "deployments",
            "downloads",
            "events",
            "forks",
            "git_commits",
            "git_refs",
            "git_tags",
            "hooks",
            "issue_comment",
            "issue_events",
            "issues",
            "keys",
            "labels",
            "languages",
            "merges",
            "milestones",
            "notifications",
            "pulls",
            "releases",
            "stargazers",
            "statuses",
            "subscribers",
            "subscription",
            "tags",
            "teams",
            "trees",
        ):
            data[f"{name}_url"] = f"{url}/{name}"
        return data

    def label(self, label: Label, repo: Repo) -> dict[str, Any]:
        return {
            "id": label.id,
            "node_id": f"LA_{label.id}",
            "url": f"{self.base}/repos/{repo.full_name}/labels/{label.name}",
            "name": label.name,
            "color": label.color,
            "default": False,
            "description": label.description,
        }

    def _ref(self, repo: Repo, ref: str, sha: str) -> dict[str, Any]:
        return {
            "label": f"{repo.owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self.user(repo.owner),
            "repo": self.repo(repo),
        }

    def pull(self, pr: PullRequest) -> dict[str, Any]:
        repo = self.world.repos[pr.repo]
        head_repo = self.world.repos.get(pr.head_repo, repo)
        url = f"{self.base}/repos/{repo.full_name}/pulls/{pr.number}"
        issue = f"{self.base}/repos/{repo.full_name}/issues/{pr.number}"
        html = f"{self.base}/{repo.full_name}/pull/{pr.number}"
        mergeable: bool | None = None
        if pr.state == "open":
            mergeable = gitops.merge_tree(repo.path, pr.base_sha, pr.head_sha) is not None
        commits = len(gitops.rev_list(repo.path, pr.base_sha, pr.head_sha)) if pr.state == "open" else 0
        files = gitops.changed_files(repo.path, pr.base_sha, pr.head_sha) if pr.state == "open" else []
        comments = sum(
            1 for c in self.world.comments.values() if c.repo == pr.repo and c.issue_number == pr.number
        )
        return {
            "url": url,
            "id": pr.id,
            "node_id": f"PR_{pr.id}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue,
            "commits_url": f"{url}/commits",
            "review_comments_url": f"{url}/comments",
            "review_comment_url": f"{self.base}/repos/{repo.full_name}/pulls/comments{{/number}}",
            "comments_url": f"{issue}/comments",
            "statuses_url": f"{self.base}/repos/{repo.full_name}/statuses/{pr.head_sha}",
            "number": pr.number,
            "state": pr.state,
            "locked": False,
            "title": pr.title,
            "user": self.user(pr.user),
            "body": pr.body,
            "labels": [self.label(repo.labels[n], repo) for n in pr.labels if n in repo.labels],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": pr.created_at,
            "updated_at": pr.updated_at,
            "closed_at": pr.closed_at,
            "merged_at": pr.merged_at,
            "merge_commit_sha": pr.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [self.user(u) for u in pr.requested_reviewers],
            "requested_teams": [],
            "head": self._ref(head_repo, pr.head_ref, pr.head_sha),
            "base": self._ref(repo, pr.base_ref, pr.base_sha),
            "_links": {
                k: {"href": v}
                for k, v in {
                    "self": url,
                    "html": html,
                    "issue": issue,
                    "comments": f"{issue}/comments",
                    "review_comments": f"{url}/comments",
                    "review_comment": f"{self.base}/repos/{repo.full_name}/pulls/comments{{/number}}",
                    "commits": f"{url}/commits",
                    "statuses": f"{self.base}/repos/{repo.full_name}/statuses/{pr.head_sha}",
                }.items()
            },
            "author_association": self.association(repo, pr.user),
            "auto_merge": None,
            "draft": pr.draft,
            "merged": pr.merged,
            "mergeable": mergeable,
            "rebaseable": mergeable,
            "mergeable_state": "clean" if mergeable else ("dirty" if mergeable is False else "unknown"),
            "merged_by": self.user(pr.merged_by) if pr.merged_by else None,
            "comments": comments,
            "review_comments": 0,
            "maintainer_can_modify": pr.maintainer_can_modify,
            "commits": commits,
            "additions": sum(int(f["additions"]) for f in files),  # type: ignore[call-overload]
            "deletions": sum(int(f["deletions"]) for f in files),  # type: ignore[call-overload]
            "changed_files": len(files),
        }

    def association(self, repo: Repo, login: str) -> str:
        if login == repo.owner:
            return "OWNER"
        perm = self.world.permission(repo, login)
        if perm in ("write", "maintain", "admin"):
            return "COLLABORATOR" if login in repo.collaborators else "MEMBER"
        org = self.world.orgs.get(repo.owner)
        if org and login in org.members:
            return "MEMBER"
        return "CONTRIBUTOR" if perm != "none" else "NONE"

    def comment(self, c: IssueComment) -> dict[str, Any]:
        repo = self.world.repos[c.repo]
        kind = "pull" if c.issue_number in self.world.pulls.get(c.repo, {}) else "issues"
        url = f"{self.base}/repos/{c.repo}/issues/comments/{c.id}"
        counts: dict[str, int] = {}
        for _, _, content in c.reactions:
            counts[content] = counts.get(content, 0) + 1
        reactions = {
            "url": f"{url}/reactions",
            "total_count": len(c.reactions),
            **{
                k: counts.get(k, 0)
                for k in ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")
            },
        }
        return {
            "id": c.id,
            "node_id": f"IC_{c.id}",
            "url": url,
            "html_url": f"{self.base}/{c.repo}/{kind}/{c.issue_number}#issuecomment-{c.id}",
            "issue_url": f"{self.base}/repos/{c.repo}/issues/{c.issue_number}",
            "body": c.body,
            "user": self.user(c.user),
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "author_association": self.association(repo, c.user),
            "performed_via_github_app": None,
            "reactions": reactions,
        }

    def issue(self, item: PullRequest | Issue) -> dict[str, Any]:
        """An issue as the issues API and webhooks show it; a pull request's carries ``pull_request``."""
        repo = self.world.repos[item.repo]
        url = f"{self.base}/repos/{item.repo}/issues/{item.number}"
        comments = sum(
            1 for c in self.world.comments.values() if c.repo == item.repo and c.issue_number == item.number
        )
        out: dict[str, Any] = {
            "url": url,
            "repository_url": f"{self.base}/repos/{item.repo}",
            "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments",
            "events_url": f"{url}/events",
            "html_url": f"{self.base}/{item.repo}/issues/{item.number}",
            "id": item.id,
            "node_id": f"I_{item.id}",
            "number": item.number,
            "title": item.title,
            "user": self.user(item.user),
            "labels": [self.label(repo.labels[n], repo) for n in item.labels if n in repo.labels],
            "state": item.state,
            "locked": False,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": comments,
            "created_at": item.created_at,
            "updated_at": item.updated_at,
            "closed_at": item.closed_at,
            "author_association": self.association(repo, item.user),
            "active_lock_reason": None,
            "body": item.body,
            "performed_via_github_app": None,
            "state_reason": None,
            "reactions": {
                "url": f"{url}/reactions",
                "total_count": 0,
                **{k: 0 for k in ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")},
            },
            "timeline_url": f"{url}/timeline",
        }
        if isinstance(item, Issue):
            out["state_reason"] = item.state_reason
            out["closed_by"] = self.user(item.closed_by) if item.closed_by else None
            return out
        html = f"{self.base}/{item.repo}/pull/{item.number}"
        out["html_url"] = html
        out["draft"] = item.draft
        out["pull_request"] = {
            "url": f"{self.base}/repos/{item.repo}/pulls/{item.number}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "merged_at": item.merged_at,
        }
        return out

    def review(self, pr: PullRequest, r: Review) -> dict[str, Any]:
        repo = self.world.repos[pr.repo]
        html = f"{self.base}/{pr.repo}/pull/{pr.number}#pullrequestreview-{r.id}"
        pull_url = f"{self.base}/repos/{pr.repo}/pulls/{pr.number}"
        return {
            "id": r.id,
            "node_id": f"PRR_{r.id}",
            "user": self.user(r.user),
            "body": r.body,
            "state": r.state,
            "html_url": html,
            "pull_request_url": pull_url,
            "_links": {"html": {"href": html}, "pull_request": {"href": pull_url}},
            "submitted_at": r.submitted_at,
            "commit_id": r.commit_id,
            "author_association": self.association(repo, r.user),
        }

    def check_suite(self, s: CheckSuite) -> dict[str, Any]:
        runs = [r for r in self.world.runs.values() if r.suite_id == s.id]
        return {
            "id": s.id,
            "node_id": f"CS_{s.id}",
            "head_branch": s.head_branch,
            "head_sha": s.head_sha,
            "status": s.status,
            "conclusion": s.conclusion,
            "url": f"{self.base}/repos/{s.repo}/check-suites/{s.id}",
            "before": None,
            "after": s.head_sha,
            "pull_requests": self._check_prs(s.repo, s.head_sha),
            "app": self.app(),
            "created_at": s.created_at,
            "updated_at": s.updated_at,
            "latest_check_runs_count": len(runs),
            "check_runs_url": f"{self.base}/repos/{s.repo}/check-suites/{s.id}/check-runs",
            "head_commit": self.head_commit(self.world.repos[s.repo], s.head_sha),
            "rerequestable": True,
            "runs_rerequestable": True,
        }

    def _check_prs(self, full_name: str, sha: str) -> list[dict[str, Any]]:
        repo = self.world.repos[full_name]
        out = []
        for pr in self.world.pulls.get(full_name, {}).values():
            if pr.head_sha == sha and pr.state == "open":
                out.append(
                    {
                        "url": f"{self.base}/repos/{full_name}/pulls/{pr.number}",
                        "id": pr.id,
                        "number": pr.number,
                        "head": {"ref": pr.head_ref, "sha": pr.head_sha, "repo": self._mini_repo(repo)},
                        "base": {"ref": pr.base_ref, "sha": pr.base_sha, "repo": self._mini_repo(repo)},
                    }
                )
        return out

    def _mini_repo(self, repo: Repo) -> dict[str, Any]:
        return {"id": repo.id, "url": f"{self.base}/repos/{repo.full_name}", "name": repo.name}

    def check_run(self, r: CheckRun) -> dict[str, Any]:
        suite = self.world.suites[r.suite_id]
        url = f"{self.base}/repos/{r.repo}/check-runs/{r.id}"
        return {
            "id": r.id,
            "node_id": f"CR_{r.id}",
            "head_sha": r.head_sha,
            "external_id": r.external_id or "",
            "url": url,
            "html_url": f"{self.base}/{r.repo}/runs/{r.id}",
            "details_url": r.details_url,
            "status": r.status,
            "conclusion": r.conclusion,
            "started_at": r.started_at,
            "completed_at": r.completed_at,
            "output": {
                "title": r.output.get("title"),
                "summary": r.output.get("summary"),
                "text": r.output.get("text"),
                "annotations_count": len(r.annotations),
                "annotations_url": f"{url}/annotations",
            },
            "name": r.name,
            "check_suite": {"id": suite.id, **self.check_suite(suite)},
            "app": self.app(),
            "pull_requests": self._check_prs(r.repo, r.head_sha),
            "deployment": None,
        }

    def status(self, s: Status) -> dict[str, Any]:
        return {
            "url": f"{self.base}/repos/{s.repo}/statuses/{s.sha}",
            "avatar_url": None,
            "id": s.id,
            "node_id": f"SC_{s.id}",
            "state": s.state,
            "description": s.description,
            "target_url": s.target_url,
            "context": s.context,
            "created_at": s.created_at,
            "updated_at": s.updated_at,
            "creator": self.user(s.creator),
        }

    def verification(self, repo: Repo, info: gitops.CommitInfo) -> dict[str, Any]:
        key = (repo.full_name, info.sha, self._key_version())
        if key not in self._verification_cache:
            self._verification_cache[key] = verification(info, self.world.users.values())
        return dict(self._verification_cache[key])

    def _key_version(self) -> int:
        return hash(
            tuple(
                (u.login, tuple(u.ssh_signing_keys), tuple(u.gpg_keys), tuple(sorted(u.emails.items())))
                for u in self.world.users.values()
            )
        )

    def user_for_email(self, email: str) -> str | None:
        for u in self.world.users.values():
            if email.lower() in (e.lower() for e in u.emails):
                return u.login
        return None

    def git_commit(self, repo: Repo, sha: str) -> dict[str, Any]:
        info = gitops.commit_info(repo.path, sha)
        url = f"{self.base}/repos/{repo.full_name}/git/commits/{info.sha}"
        return {
            "sha": info.sha,
            "node_id": f"C_{info.sha}",
            "url": url,
            "html_url": f"{self.base}/{repo.full_name}/commit/{info.sha}",
            "author": {"name": info.author.name, "email": info.author.email, "date": info.author.date},
            "committer": {
                "name": info.committer.name,
                "email": info.committer.email,
                "date": info.committer.date,
            },
            "message": info.message.rstrip("\n"),
            "tree": {"sha": info.tree, "url": f"{self.base}/repos/{repo.full_name}/git/trees/{info.tree}"},
            "parents": [
                {
                    "sha": p,
                    "url": f"{self.base}/repos/{repo.full_name}/git/commits/{p}",
                    "html_url": f"{self.base}/{repo.full_name}/commit/{p}",
                }
                for p in info.parents
            ],
            "verification": self.verification(repo, info),
            "comment_count": 0,
        }

    def commit(self, repo: Repo, sha: str, with_files: bool = False) -> dict[str, Any]:
        """A ``commit`` object (repos/get-commit, list-commits, pulls/list-commits, compare)."""
        info = gitops.commit_info(repo.path, sha)
        inner = self.git_commit(repo, sha)
        author = self.user_for_email(info.author.email)
        committer = self.user_for_email(info.committer.email)
        data: dict[str, Any] = {
            "url": f"{self.base}/repos/{repo.full_name}/commits/{info.sha}",
            "sha": info.sha,
            "node_id": f"C_{info.sha}",
            "html_url": f"{self.base}/{repo.full_name}/commit/{info.sha}",
            "comments_url": f"{self.base}/repos/{repo.full_name}/commits/{info.sha}/comments",
            "commit": inner,
            "author": self.user(author) if author else None,
            "committer": self.user(committer) if committer else None,
            "parents": inner["parents"],
        }
        if with_files:
            base = info.parents[0] if info.parents else _empty_tree(repo.path)
            files = gitops.changed_files(repo.path, base, info.sha)
            data["files"] = [self.file(repo, f, info.sha) for f in files]
            adds = sum(int(f["additions"]) for f in files)  # type: ignore[call-overload]
            dels = sum(int(f["deletions"]) for f in files)  # type: ignore[call-overload]
            data["stats"] = {"additions": adds, "deletions": dels, "total": adds + dels}
        return data

    def file(self, repo: Repo, f: dict[str, Any], sha: str) -> dict[str, Any]:
        name = f["filename"]
        blob = gitops.git(repo.path, "rev-parse", f"{sha}:{name}", check=False).decode().strip() or "0" * 40
        return {
            "sha": blob,
            "filename": name,
            "status": f["status"],
            "additions": f["additions"],
            "deletions": f["deletions"],
            "changes": f["changes"],
            "blob_url": f"{self.base}/{repo.full_name}/blob/{sha}/{name}",
            "raw_url": f"{self.base}/{repo.full_name}/raw/{sha}/{name}",
            "contents_url": f"{self.base}/repos/{repo.full_name}/contents/{name}?ref={sha}",
            "patch": f["patch"],
        }

    def head_commit(self, repo: Repo, sha: str) -> dict[str, Any]:
        """The short commit form of push and check_suite payloads."""
        info = gitops.commit_info(repo.path, sha)
        return {
            "id": info.sha,
            "tree_id": info.tree,
            "message": info.message.rstrip("\n"),
            "timestamp": info.committer.date,
            "author": {"name": info.author.name, "email": info.author.email},
            "committer": {"name": info.committer.name, "email": info.committer.email},
        }


def _empty_tree(path: Path) -> str:
    return gitops.git(path, "hash-object", "-t", "tree", "--stdin", input=b"").decode().strip()
