"""Repository, branch, content, commit, compare, merge and status routes."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from bot.git.files import git
from bot.sim import gitops
from bot.sim.core import Actor, Answer, ApiError, SimCore, not_found
from bot.sim.state import (
    Repo,
    Status,
    rank,
)


class RepoRoutes(SimCore):
    """Repository, branch, content, commit, compare, merge and status routes."""

    async def op_repos__get(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        data = self.views.repo(repo)
        if a.kind == "user" and a.login:
            perm = rank(self.world.permission(repo, a.login))
            data["permissions"] = {
                n: perm >= rank(n)
                for n in ("admin", "maintain", "push", "triage", "pull")
                if n not in ("push", "pull")
            } | {"push": perm >= rank("write"), "pull": perm >= rank("read")}
        return Answer(200, data)

    async def op_repos__get_branch(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        sha = gitops.resolve(repo.path, f"refs/heads/{p['branch']}")
        if sha is None:
            raise ApiError(404, "Branch not found")
        url = f"{self.base_url}/repos/{repo.full_name}/branches/{p['branch']}"
        return Answer(
            200,
            {
                "name": p["branch"],
                "commit": self.views.commit(repo, sha),
                "_links": {"html": f"{self.base_url}/{repo.full_name}/tree/{p['branch']}", "self": url},
                "protected": p["branch"] in repo.protection,
                "protection": {"enabled": p["branch"] in repo.protection},
                "protection_url": f"{url}/protection",
            },
        )

    async def op_repos__get_branch_protection(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        repo = self._repo(p, a)
        protection = repo.protection.get(p["branch"])
        if protection is None:
            raise ApiError(404, "Branch not protected")
        url = f"{self.base_url}/repos/{repo.full_name}/branches/{p['branch']}/protection"
        return Answer(200, {"url": url, **protection})

    async def op_repos__get_collaborator_permission_level(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        repo = self._repo(p, a)
        if p["username"] not in self.world.users:
            raise not_found()
        perm = self.world.permission(repo, p["username"])
        legacy = {"maintain": "write", "triage": "read"}.get(perm, perm)
        user = self.views.user(p["username"])
        return Answer(200, {"permission": legacy, "role_name": perm, "user": user})

    async def op_repos__get_content(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        ref = req.query.get("ref") or repo.default_branch
        sha = gitops.resolve(repo.path, ref)
        if sha is None:
            raise ApiError(404, f"No commit found for the ref {ref}")
        path = p["path"].strip("/")
        kind = git(repo.path, "cat-file", "-t", f"{sha}:{path}", check=False).decode().strip()
        if not kind:
            raise not_found()
        url = f"{self.base_url}/repos/{repo.full_name}/contents/{path}?ref={ref}"
        if kind == "tree":
            entries = []
            out = git(repo.path, "ls-tree", "-z", "-l", f"{sha}:{path}").decode(errors="replace")
            for line in filter(None, out.split("\0")):
                meta, name = line.split("\t", 1)
                _mode, typ, osha, size = meta.split()
                child = f"{path}/{name}" if path else name
                entries.append(
                    self._content_entry(
                        repo,
                        child,
                        ref,
                        "dir" if typ == "tree" else "file",
                        osha,
                        int(size) if size.isdigit() else 0,
                    )
                )
            return Answer(200, entries)
        blob_sha = git(repo.path, "rev-parse", f"{sha}:{path}").decode().strip()
        data = git(repo.path, "cat-file", "blob", blob_sha)
        accept = req.headers.get("Accept", "")
        if "raw" in accept:
            return Answer(200, raw=data, headers={"Content-Type": "application/vnd.github.raw"})
        entry = self._content_entry(repo, path, ref, "file", blob_sha, len(data))
        entry.update(encoding="base64", content=base64.encodebytes(data).decode())
        entry["url"] = url
        return Answer(200, entry)

    def _content_entry(
        self, repo: Repo, path: str, ref: str, typ: str, sha: str, size: int
    ) -> dict[str, Any]:
        url = f"{self.base_url}/repos/{repo.full_name}/contents/{path}?ref={ref}"
        git_url = f"{self.base_url}/repos/{repo.full_name}/git/{'trees' if typ == 'dir' else 'blobs'}/{sha}"
        html = f"{self.base_url}/{repo.full_name}/blob/{ref}/{path}"
        return {
            "type": typ,
            "size": size if typ == "file" else 0,
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "url": url,
            "git_url": git_url,
            "html_url": html,
            "download_url": f"{self.base_url}/{repo.full_name}/raw/{ref}/{path}" if typ == "file" else None,
            "_links": {"self": url, "git": git_url, "html": html},
        }

    async def op_repos__list_commits(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        ref = req.query.get("sha") or repo.default_branch
        sha = gitops.resolve(repo.path, ref)
        if sha is None:
            if not gitops.refs(repo.path):
                raise ApiError(409, "Git Repository is empty.")
            raise not_found()
        args = ["rev-list", sha]
        if req.query.get("path"):
            args += ["--", req.query["path"]]
        shas = git(repo.path, *args).decode().split()
        chunk, headers = self._page(req, shas)
        return Answer(200, [self.views.commit(repo, s) for s in chunk], headers)

    async def op_repos__get_commit(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        sha = gitops.resolve(repo.path, p["ref"])
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {p['ref']}")
        return Answer(200, self.views.commit(repo, sha, with_files=True))

    async def op_repos__compare_commits(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        repo = self._repo(p, a)
        if "..." in p["basehead"]:
            base_name, head_name = p["basehead"].split("...", 1)
        elif ".." in p["basehead"]:
            base_name, head_name = p["basehead"].split("..", 1)
        else:
            raise not_found()
        base, head = gitops.resolve(repo.path, base_name), gitops.resolve(repo.path, head_name)
        if base is None or head is None:
            raise not_found()
        mb = gitops.merge_base(repo.path, base, head) or base
        ahead = gitops.rev_list(repo.path, base, head)
        behind = gitops.rev_list(repo.path, head, base)
        status = (
            "identical"
            if not ahead and not behind
            else ("ahead" if not behind else ("behind" if not ahead else "diverged"))
        )
        files = gitops.changed_files(repo.path, mb, head)
        url = f"{self.base_url}/repos/{repo.full_name}/compare/{p['basehead']}"
        html = f"{self.base_url}/{repo.full_name}/compare/{p['basehead']}"
        chunk, headers = self._page(req, ahead)
        return Answer(
            200,
            {
                "url": url,
                "html_url": html,
                "permalink_url": html,
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "base_commit": self.views.commit(repo, base),
                "merge_base_commit": self.views.commit(repo, mb),
                "status": status,
                "ahead_by": len(ahead),
                "behind_by": len(behind),
                "total_commits": len(ahead),
                "commits": [self.views.commit(repo, s) for s in chunk],
                "files": [self.views.file(repo, f, head) for f in files],
            },
            headers,
        )

    async def op_repos__merge(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "write")
        base_sha, head_sha = gitops.resolve(repo.path, b["base"]), gitops.resolve(repo.path, b["head"])
        if base_sha is None or head_sha is None:
            raise ApiError(404, "Base does not exist" if base_sha is None else "Head does not exist")
        if gitops.is_ancestor(repo.path, head_sha, base_sha):
            return Answer(204)
        tree = gitops.merge_tree(repo.path, base_sha, head_sha)
        if tree is None:
            raise ApiError(409, "Merge conflict")
        who = self._person(a)
        msg = b.get("commit_message") or f"Merge {b['head']} into {b['base']}"
        sha = gitops.commit_tree(repo.path, tree, [base_sha, head_sha], msg, who, who)
        gitops.update_ref(repo.path, f"refs/heads/{b['base']}", sha, base_sha)
        self.ref_moved(repo, f"refs/heads/{b['base']}", base_sha, sha, a.login or self.bot_login)
        return Answer(201, self.views.commit(repo, sha))

    async def op_repos__merge_upstream(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        self._repo(p, a, "write")
        raise ApiError(422, "This repository is not a fork; there is no upstream to merge from.")

    async def op_repos__create_commit_status(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        repo = self._repo(p, a, "write")
        sha = gitops.resolve(repo.path, p["sha"])
        if sha is None:
            raise ApiError(
                422,
                "Validation Failed",
                [
                    {
                        "resource": "Status",
                        "code": "custom",
                        "field": "sha",
                        "message": f"No commit found for SHA: {p['sha']}",
                    }
                ],
            )
        status = Status(
            self.world.ids.next("status"),
            repo.full_name,
            sha,
            b["state"],
            b.get("context") or "default",
            b.get("description"),
            b.get("target_url"),
            a.login or self.bot_login,
        )
        self.world.statuses.append(status)
        self._send(
            "status",
            {
                "id": status.id,
                "sha": sha,
                "name": repo.full_name,
                "target_url": status.target_url,
                "context": status.context,
                "description": status.description,
                "state": status.state,
                "commit": self.views.commit(repo, sha),
                "branches": [],
                "created_at": status.created_at,
                "updated_at": status.updated_at,
                "avatar_url": None,
            },
            repo,
            sender=a.login,
        )
        return Answer(201, self.views.status(status))

    def _statuses_for(self, repo: Repo, ref: str) -> list[Status]:
        sha = gitops.resolve(repo.path, ref)
        if sha is None:
            raise not_found()
        return [s for s in reversed(self.world.statuses) if s.repo == repo.full_name and s.sha == sha]

    async def op_repos__list_commit_statuses_for_ref(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        repo = self._repo(p, a)
        chunk, headers = self._page(req, self._statuses_for(repo, p["ref"]))
        return Answer(200, [self.views.status(s) for s in chunk], headers)

    async def op_repos__get_combined_status_for_ref(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        repo = self._repo(p, a)
        latest: dict[str, Status] = {}
        for s in self._statuses_for(repo, p["ref"]):
            latest.setdefault(s.context, s)
        states = {s.state for s in latest.values()}
        state = (
            "failure"
            if states & {"failure", "error"}
            else ("pending" if "pending" in states or not states else "success")
        )
        sha = gitops.resolve(repo.path, p["ref"]) or ""
        return Answer(
            200,
            {
                "state": state,
                "statuses": [self.views.status(s) for s in latest.values()],
                "sha": sha,
                "total_count": len(latest),
                "repository": self.views.repo(repo),
                "commit_url": f"{self.base_url}/repos/{repo.full_name}/commits/{sha}",
                "url": f"{self.base_url}/repos/{repo.full_name}/commits/{sha}/status",
            },
        )
