"""Git data routes: refs, trees, blobs and commits, done with real git plumbing."""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
from typing import Any

from aiohttp import web

from bot.git.files import GIT_ENV, git
from bot.sim import gitops
from bot.sim.core import Actor, Answer, ApiError, SimCore, not_found
from bot.sim.state import (
    Repo,
)


class GitDataRoutes(SimCore):
    """Git data routes: refs, trees, blobs and commits, done with real git plumbing."""

    def _ref_view(self, repo: Repo, ref: str, sha: str) -> dict[str, Any]:
        return {
            "ref": ref,
            "node_id": f"REF_{ref}",
            "url": f"{self.base_url}/repos/{repo.full_name}/git/{ref}",
            "object": {
                "type": gitops.object_type(repo.path, sha) or "commit",
                "sha": sha,
                "url": f"{self.base_url}/repos/{repo.full_name}/git/commits/{sha}",
            },
        }

    async def op_git__get_ref(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        ref = f"refs/{p['ref']}"
        sha = gitops.refs(repo.path).get(ref)
        if sha is None:
            raise not_found()
        return Answer(200, self._ref_view(repo, ref, sha))

    async def op_git__create_ref(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "write")
        ref = b["ref"]
        if not ref.startswith("refs/") or ref.count("/") < 2:
            raise ApiError(422, "Reference name must start with 'refs/' and have at least two slashes.")
        if ref in gitops.refs(repo.path):
            raise ApiError(422, "Reference already exists")
        if gitops.object_type(repo.path, b["sha"]) is None:
            raise ApiError(422, "Object does not exist")
        gitops.update_ref(repo.path, ref, b["sha"])
        self.ref_moved(repo, ref, gitops.ZERO, b["sha"], a.login or self.bot_login)
        return Answer(201, self._ref_view(repo, ref, b["sha"]))

    async def op_git__update_ref(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "write")
        ref = f"refs/{p['ref']}"
        old = gitops.refs(repo.path).get(ref)
        if old is None:
            raise ApiError(422, "Reference does not exist")
        new = b["sha"]
        if gitops.object_type(repo.path, new) is None:
            raise ApiError(422, "Object does not exist")
        if not b.get("force") and not gitops.is_ancestor(repo.path, old, new):
            raise ApiError(422, "Update is not a fast forward")
        gitops.update_ref(repo.path, ref, new, old)
        self.ref_moved(repo, ref, old, new, a.login or self.bot_login)
        return Answer(200, self._ref_view(repo, ref, new))

    async def op_git__delete_ref(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "write")
        ref = f"refs/{p['ref']}"
        old = gitops.refs(repo.path).get(ref)
        if old is None:
            raise ApiError(422, "Reference does not exist")
        git(repo.path, "update-ref", "-d", ref, old)
        self.ref_moved(repo, ref, old, gitops.ZERO, a.login or self.bot_login)
        return Answer(204)

    async def op_git__get_tree(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        sha = (
            git(repo.path, "rev-parse", "--verify", "-q", f"{p['tree_sha']}^{{tree}}", check=False)
            .decode()
            .strip()
        )
        if not sha:
            raise not_found()
        args = ["ls-tree", "-z", "-l"] + (["-r", "-t"] if req.query.get("recursive") else []) + [sha]
        tree = []
        for line in filter(None, git(repo.path, *args).decode(errors="replace").split("\0")):
            meta, path = line.split("\t", 1)
            mode, typ, osha, size = meta.split()
            entry: dict[str, Any] = {
                "path": path,
                "mode": mode,
                "type": typ,
                "sha": osha,
                "url": f"{self.base_url}/repos/{repo.full_name}/git/{typ}s/{osha}",
            }
            if typ == "blob":
                entry["size"] = int(size)
            tree.append(entry)
        return Answer(
            200,
            {
                "sha": sha,
                "url": f"{self.base_url}/repos/{repo.full_name}/git/trees/{sha}",
                "tree": tree,
                "truncated": False,
            },
        )

    async def op_git__create_tree(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "write")
        with tempfile.TemporaryDirectory(prefix="sim-tree-") as tmp:
            env = dict(GIT_ENV, GIT_INDEX_FILE=os.path.join(tmp, "index"))

            def run(*args: str, data: bytes | None = None) -> str:
                proc = subprocess.run(
                    ["git", f"--git-dir={repo.path}", *args],
                    input=data,
                    env=env,
                    capture_output=True,
                    check=False,
                )
                if proc.returncode != 0:
                    raise ApiError(422, f"Invalid tree: {proc.stderr.decode(errors='replace').strip()}")
                return proc.stdout.decode().strip()

            if b.get("base_tree"):
                run("read-tree", b["base_tree"])
            for entry in b["tree"]:
                path = entry.get("path")
                if not path:
                    raise ApiError(422, "Invalid request.\n\nEvery tree entry needs a path.")
                if "content" in entry:
                    sha = run("hash-object", "-w", "--stdin", data=str(entry["content"]).encode())
                else:
                    sha = entry.get("sha")
                if sha is None:
                    run("update-index", "--force-remove", "--", path)
                    continue
                run("update-index", "--add", "--cacheinfo", f"{entry.get('mode', '100644')},{sha},{path}")
            tree_sha = run("write-tree")
        answer = await self.op_git__get_tree(req, {**p, "tree_sha": tree_sha}, None, a)
        return Answer(201, answer.body)

    async def op_git__create_blob(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "write")
        content = b["content"]
        data = base64.b64decode(content) if b.get("encoding") == "base64" else content.encode()
        sha = git(repo.path, "hash-object", "-w", "--stdin", input=data).decode().strip()
        return Answer(201, {"url": f"{self.base_url}/repos/{repo.full_name}/git/blobs/{sha}", "sha": sha})

    async def op_git__get_blob(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        if gitops.object_type(repo.path, p["file_sha"]) != "blob":
            raise not_found()
        data = git(repo.path, "cat-file", "blob", p["file_sha"])
        return Answer(
            200,
            {
                "content": base64.encodebytes(data).decode(),
                "encoding": "base64",
                "url": f"{self.base_url}/repos/{repo.full_name}/git/blobs/{p['file_sha']}",
                "sha": p["file_sha"],
                "size": len(data),
                "node_id": f"B_{p['file_sha']}",
            },
        )

    async def op_git__create_commit(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "write")
        if gitops.object_type(repo.path, b["tree"]) != "tree":
            raise ApiError(422, "Tree SHA does not exist")
        for parent in b.get("parents", []):
            if gitops.object_type(repo.path, parent) != "commit":
                raise ApiError(422, "Parent SHA does not exist or is not a commit object")
        who = self._person(a)
        author = gitops.Person(**{**who.__dict__, **(b.get("author") or {})})
        committer = gitops.Person(**{**who.__dict__, **(b.get("committer") or {})})
        sha = gitops.commit_tree(repo.path, b["tree"], b.get("parents", []), b["message"], author, committer)
        return Answer(201, self.views.git_commit(repo, sha))

    async def op_git__get_commit(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        if gitops.object_type(repo.path, p["commit_sha"]) != "commit":
            raise not_found()
        return Answer(200, self.views.git_commit(repo, p["commit_sha"]))
