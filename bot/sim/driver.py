"""A test driver that acts as people on the simulator: push branches, open PRs, review, comment, merge.

Git work is real: each push is a commit made in a temporary clone (cloned over the simulator's smart
HTTP with the user's token) and pushed back. Everything else goes through the REST API with the
user's personal token, so webhooks fire exactly as they would for a person clicking on GitHub.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.git.files import GIT_ENV
from bot.sim.server import Simulator
from bot.sim.state import Installation


class DriverError(RuntimeError):
    """A driver action failed; the message says which and why (never a token)."""


@dataclass
class SigningKey:
    """A key a user signs commits with: ``kind`` is ``ssh`` or ``gpg``."""

    kind: str
    key: str  # private key path (ssh) or key id/fingerprint (gpg)
    public: str  # the public key line (ssh) or armoured public key (gpg)
    gnupg_home: str | None = None


@dataclass
class Person:
    """A simulated user with a personal token and, optionally, signing keys."""

    login: str
    token: str
    email: str
    name: str


class Driver:
    """Act as users on a running :class:`Simulator`."""

    def __init__(self, sim: Simulator, workdir: Path | str | None = None) -> None:
        self.sim = sim
        self._tmp = tempfile.TemporaryDirectory(prefix="sim-driver-") if workdir is None else None
        self.workdir = Path(workdir) if workdir else Path(self._tmp.name)  # type: ignore[union-attr]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.people: dict[str, Person] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Driver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session:
            await self._session.close()
        if self._tmp:
            self._tmp.cleanup()

    # ------------------------------------------------------------------ people and repos
    def user(self, login: str, *, name: str | None = None, email: str | None = None) -> Person:
        """Create a user (with a verified email and a personal token) and return it."""
        u = self.sim.create_user(login, name=name or login.title(), email=email)
        person = Person(login, self.sim.user_token(login), next(iter(u.emails)), u.name)
        self.people[login] = person
        return person

    def org(self, login: str, *, members: list[str] | tuple[str, ...] = ()) -> None:
        self.sim.create_org(login, members=members)

    def team(self, org: str, slug: str, **kwargs: Any) -> None:
        """Create a team (``members``, ``maintainers``, ``repos``: see :meth:`Simulator.create_team`)."""
        self.sim.create_team(org, slug, **kwargs)

    def repo(
        self,
        full_name: str,
        *,
        default_branch: str = "main",
        private: bool = True,
        collaborators: dict[str, str] | None = None,
    ) -> str:
        """Create a repository; ``collaborators`` maps login to permission."""
        owner, name = full_name.split("/", 1)
        self.sim.create_repo(owner, name, default_branch=default_branch, private=private)
        for login, perm in (collaborators or {}).items():
            self.sim.set_permission(full_name, login, perm)
        return full_name

    def install(self, account: str) -> Installation:
        """Install the App on an account."""
        return self.sim.install_app(account)

    def app(self, account: str) -> str:
        """Act as the App's installation on ``account``; returns the ``login`` to pass to :meth:`api`."""
        inst = self.sim.world.installation_for(account)
        if inst is None:
            raise DriverError(f"the App is not installed on {account!r}; call install({account!r}) first")
        name = f"{self.sim.bot_login}@{account}"
        self.people[name] = Person(name, self.sim.installation_token(inst.id).value, "", self.sim.bot_login)
        return name

    def ssh_key(self, login: str, *, register: bool = True) -> SigningKey:
        """Make an ed25519 SSH signing key for a user (registered on the simulator unless told not to)."""
        path = self.workdir / "keys" / f"{login}-ssh-{len(list(self.workdir.glob('keys/*')))}"
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", login, "-f", str(path)],
            check=True,
            capture_output=True,
        )
        public = path.with_suffix(".pub").read_text() if path.suffix else Path(f"{path}.pub").read_text()
        if register:
            self.sim.add_ssh_signing_key(login, public)
        return SigningKey("ssh", str(path), public.strip())

    def gpg_key(self, login: str, *, email: str | None = None, register: bool = True) -> SigningKey:
        """Make an ed25519 OpenPGP signing key for a user's email (in its own GNUPGHOME)."""
        person = self.people[login]
        home = self.workdir / "gnupg" / f"{login}-{len(list(self.workdir.glob('gnupg/*')))}"
        home.mkdir(parents=True, mode=0o700)
        env = dict(GIT_ENV, GNUPGHOME=str(home))
        uid = f"{person.name} <{email or person.email}>"
        subprocess.run(
            [
                "gpg",
                "--batch",
                "--passphrase",
                "",
                "--pinentry-mode",
                "loopback",
                "--quick-generate-key",
                uid,
                "ed25519",
                "sign",
                "never",
            ],
            check=True,
            capture_output=True,
            env=env,
        )
        out = subprocess.run(
            ["gpg", "--batch", "--with-colons", "--list-secret-keys"],
            check=True,
            capture_output=True,
            env=env,
        ).stdout.decode()
        fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
        public = subprocess.run(
            ["gpg", "--batch", "--armor", "--export", fpr], check=True, capture_output=True, env=env
        ).stdout.decode()
        if register:
            self.sim.add_gpg_key(login, public)
        return SigningKey("gpg", fpr, public, str(home))

    # ------------------------------------------------------------------ git
    def _clone_url(self, login: str, full_name: str) -> str:
        token = self.people[login].token
        base = self.sim.base_url.replace("http://", f"http://{login}:{token}@")
        return f"{base}/{full_name}.git"

    async def push(
        self,
        login: str,
        full_name: str,
        branch: str,
        files: dict[str, str | None],
        *,
        message: str = "Update files",
        base: str | None = None,
        sign: SigningKey | None = None,
        committer_email: str | None = None,
        force: bool = False,
        wait: bool = True,
    ) -> str:
        """Commit ``files`` (path -> text, None deletes) on ``branch`` as ``login`` and push; return the sha.

        The branch starts from ``base`` (default: the branch itself if it exists, else the default
        branch, else an empty history).
        """
        sha = await asyncio.to_thread(
            self._push_sync, login, full_name, branch, files, message, base, sign, committer_email, force
        )
        if wait:
            await self.sim.wait_for_webhooks()
        return sha

    def _run(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, env=env or GIT_ENV, check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace")
            for p in self.people.values():
                err = err.replace(p.token, "***")
            raise DriverError(f"git {args[0]} failed: {err.strip()}")
        return proc.stdout.decode().strip()

    def _push_sync(
        self,
        login: str,
        full_name: str,
        branch: str,
        files: dict[str, str | None],
        message: str,
        base: str | None,
        sign: SigningKey | None,
        committer_email: str | None,
        force: bool,
    ) -> str:
        person = self.people[login]
        repo = self.sim.world.repos[full_name]
        with tempfile.TemporaryDirectory(prefix="push-", dir=self.workdir) as tmp:
            work = Path(tmp)
            url = self._clone_url(login, full_name)
            self._run(work, "init", "-q", "-b", branch, ".")
            self._run(work, "remote", "add", "origin", url)
            heads = self._run(work, "ls-remote", "--heads", "origin")
            existing = {
                line.split("\t")[1].removeprefix("refs/heads/") for line in heads.splitlines() if line
            }
            start = base or (branch if branch in existing else repo.default_branch)
            if start in existing:
                self._run(work, "fetch", "-q", "origin", f"refs/heads/{start}")
                self._run(work, "reset", "-q", "--hard", "FETCH_HEAD")
            removed = [path for path, text in files.items() if text is None]
            for path, text in files.items():
                if text is not None:
                    target = work / path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text)
            if removed:
                self._run(work, "rm", "-q", "--", *removed)
            written = [path for path, text in files.items() if text is not None]
            if written:
                self._run(work, "add", "--", *written)
            env = dict(GIT_ENV)
            email = committer_email or person.email
            env.update(
                GIT_AUTHOR_NAME=person.name,
                GIT_AUTHOR_EMAIL=email,
                GIT_COMMITTER_NAME=person.name,
                GIT_COMMITTER_EMAIL=email,
            )
            args = ["commit", "-q", "--allow-empty", "-m", message]
            if sign is not None and sign.kind == "ssh":
                args = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={sign.key}", *args, "-S"]
            elif sign is not None:
                env["GNUPGHOME"] = sign.gnupg_home or ""
                args = ["-c", "gpg.format=openpgp", "-c", f"user.signingkey={sign.key}", *args, "-S"]
            self._run(work, *args, env=env)
            self._run(
                work, "push", "-q", *(["--force"] if force else []), "origin", f"HEAD:refs/heads/{branch}"
            )
            return self._run(work, "rev-parse", "HEAD")

    async def push_dir(
        self,
        login: str,
        full_name: str,
        branch: str,
        directory: Path | str,
        *,
        message: str = "Add files",
        **kw: Any,
    ) -> str:
        """Push every file under ``directory`` (relative paths kept) as one commit; see :meth:`push`."""
        files = await asyncio.to_thread(_read_tree, Path(directory))
        return await self.push(login, full_name, branch, files, message=message, **kw)

    def clone(self, login: str, full_name: str, dest: Path) -> Path:
        """Clone a repository as ``login`` into ``dest`` (over HTTP with the user's token)."""
        self._run(dest.parent, "clone", "-q", self._clone_url(login, full_name), str(dest))
        return dest

    # ------------------------------------------------------------------ REST as a user
    async def api(
        self,
        login: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        expect: int | tuple[int, ...] = (200, 201, 202, 204),
    ) -> Any:
        """Call the REST API as ``login``; raise :class:`DriverError` unless the status is expected."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {
            "Authorization": f"token {self.people[login].token}",
            "Accept": "application/vnd.github+json",
        }
        async with self._session.request(
            method, f"{self.sim.base_url}{path}", json=body, headers=headers
        ) as resp:
            text = await resp.text()
            wanted = (expect,) if isinstance(expect, int) else expect
            if resp.status not in wanted:
                raise DriverError(f"{method} {path} as {login} answered {resp.status}: {text[:500]}")
            return await resp.json() if text else None

    async def open_pr(
        self,
        login: str,
        full_name: str,
        head: str,
        *,
        base: str | None = None,
        title: str | None = None,
        body: str | None = None,
        draft: bool = False,
    ) -> int:
        """Open a pull request from ``head``; return its number once its webhooks are delivered."""
        repo = self.sim.world.repos[full_name]
        data = {"title": title or head, "head": head, "base": base or repo.default_branch, "draft": draft}
        if body is not None:
            data["body"] = body
        pr = await self.api(login, "POST", f"/repos/{full_name}/pulls", data, expect=201)
        await self.sim.wait_for_webhooks()
        return int(pr["number"])

    async def review(
        self,
        login: str,
        full_name: str,
        number: int,
        event: str,
        body: str = "",
        commit_id: str | None = None,
    ) -> int:
        """Submit a review: ``event`` is APPROVE, REQUEST_CHANGES or COMMENT; return the review id."""
        data: dict[str, Any] = {"event": event, "body": body}
        if commit_id:
            data["commit_id"] = commit_id
        r = await self.api(login, "POST", f"/repos/{full_name}/pulls/{number}/reviews", data, expect=200)
        await self.sim.wait_for_webhooks()
        return int(r["id"])

    async def approve(self, login: str, full_name: str, number: int, body: str = "") -> int:
        return await self.review(login, full_name, number, "APPROVE", body)

    async def dismiss(self, login: str, full_name: str, number: int, review_id: int, message: str) -> None:
        """Dismiss a review (a simulator action: the dismissal route is not in the REST subset)."""
        self.sim.dismiss_review(full_name, number, review_id, message, login)
        await self.sim.wait_for_webhooks()

    async def request_review(self, login: str, full_name: str, number: int, reviewer: str) -> None:
        """Ask ``reviewer`` for a review, as ``login``."""
        self.sim.request_review(full_name, number, reviewer, login)
        await self.sim.wait_for_webhooks()

    async def rerun_check(self, login: str, full_name: str, number: int, name: str) -> None:
        """Click "Re-run" on the PR's latest check run called ``name``."""
        self.sim.rerequest_check_run(self._run_id(full_name, number, name), login)
        await self.sim.wait_for_webhooks()

    async def click_check_action(
        self, login: str, full_name: str, number: int, name: str, identifier: str
    ) -> None:
        """Click the action button ``identifier`` of the PR's latest check run called ``name``."""
        self.sim.request_check_action(self._run_id(full_name, number, name), identifier, login)
        await self.sim.wait_for_webhooks()

    def _run_id(self, full_name: str, number: int, name: str) -> int:
        head = self.sim.pull(full_name, number).head_sha
        runs = [
            r.id
            for r in self.sim.world.runs.values()
            if r.repo == full_name and r.head_sha == head and r.name == name
        ]
        if not runs:
            raise DriverError(f"no check run {name!r} on the head of {full_name}#{number}")
        return max(runs)

    async def comment(self, login: str, full_name: str, number: int, body: str) -> int:
        """Post an issue comment on a PR; return the comment id."""
        c = await self.api(
            login, "POST", f"/repos/{full_name}/issues/{number}/comments", {"body": body}, expect=201
        )
        await self.sim.wait_for_webhooks()
        return int(c["id"])

    async def edit_comment(self, login: str, full_name: str, comment_id: int, body: str) -> None:
        await self.api(login, "PATCH", f"/repos/{full_name}/issues/comments/{comment_id}", {"body": body})
        await self.sim.wait_for_webhooks()

    async def delete_comment(self, login: str, full_name: str, comment_id: int) -> None:
        await self.api(login, "DELETE", f"/repos/{full_name}/issues/comments/{comment_id}", expect=204)
        await self.sim.wait_for_webhooks()

    async def merge(
        self,
        login: str,
        full_name: str,
        number: int,
        method: str = "merge",
        expect: int | tuple[int, ...] = 200,
    ) -> dict[str, Any]:
        """Merge a PR with ``merge``, ``squash`` or ``rebase``; return GitHub's answer."""
        result: dict[str, Any] = await self.api(
            login, "PUT", f"/repos/{full_name}/pulls/{number}/merge", {"merge_method": method}, expect=expect
        )
        await self.sim.wait_for_webhooks()
        return result

    def fork(self, login: str, full_name: str) -> str:
        """``login`` forks ``full_name``; returns the fork's full name (``login/<name>``)."""
        return self.sim.fork_repo(full_name, login).full_name

    async def enqueue(self, login: str, full_name: str, number: int) -> None:
        """``login`` adds a PR to its base branch's merge queue (GraphQL on GitHub, so a driver method)."""
        self.sim.enqueue(full_name, number, login)
        await self.sim.wait_for_webhooks()

    async def close_pr(self, login: str, full_name: str, number: int) -> None:
        """Close a PR without merging."""
        await self.api(login, "PATCH", f"/repos/{full_name}/pulls/{number}", {"state": "closed"})
        await self.sim.wait_for_webhooks()

    async def reopen(self, login: str, full_name: str, number: int) -> None:
        await self.api(login, "PATCH", f"/repos/{full_name}/pulls/{number}", {"state": "open"})
        await self.sim.wait_for_webhooks()

    async def open_issue(
        self, login: str, full_name: str, title: str, body: str = "", labels: list[str] | None = None
    ) -> int:
        """``login`` opens a plain issue; returns its number (shared with pull requests)."""
        data = {"title": title, "body": body, "labels": labels or []}
        created = await self.api(login, "POST", f"/repos/{full_name}/issues", data, expect=201)
        await self.sim.wait_for_webhooks()
        return int(created["number"])

    async def set_issue_state(
        self, login: str, full_name: str, number: int, state: str, reason: str | None = None
    ) -> None:
        """``login`` closes (``state="closed"``, with an optional ``state_reason``) or reopens an issue."""
        data: dict[str, Any] = {"state": state, **({"state_reason": reason} if reason else {})}
        await self.api(login, "PATCH", f"/repos/{full_name}/issues/{number}", data)
        await self.sim.wait_for_webhooks()

    # ------------------------------------------------------------------ what the PR shows
    def comments(self, full_name: str, number: int) -> list[tuple[str, str]]:
        """(author, body) of every comment on a PR, oldest first."""
        return [
            (c.user, c.body)
            for c in sorted(self.sim.world.comments.values(), key=lambda c: c.id)
            if c.repo == full_name and c.issue_number == number
        ]

    def check_runs(self, full_name: str, number: int) -> list[dict[str, Any]]:
        """The check runs on a PR's head commit: name, status, conclusion, title, summary, annotations."""
        pr = self.sim.pull(full_name, number)
        return [
            {
                "name": r.name,
                "status": r.status,
                "conclusion": r.conclusion,
                "title": r.output.get("title"),
                "summary": r.output.get("summary"),
                "annotations": list(r.annotations),
            }
            for r in sorted(self.sim.world.runs.values(), key=lambda r: r.id)
            if r.repo == full_name and r.head_sha == pr.head_sha
        ]

    def conversation(self, full_name: str, number: int) -> str:
        """The PR as its page would show it, as plain text: reviews, comments and checks in order."""
        pr = self.sim.pull(full_name, number)
        state = "merged" if pr.merged else pr.state
        lines = [
            f"#{number} {pr.title}  [{state}]  {pr.user} wants to merge {pr.head_ref} into {pr.base_ref}"
        ]
        items: list[tuple[str, int, str]] = []
        for c in self.sim.world.comments.values():
            if c.repo == full_name and c.issue_number == number:
                items.append((c.created_at, c.id, f"--- {c.user} commented:\n{c.body.strip()}"))
        for r in pr.reviews:
            text = f"--- {r.user} reviewed ({r.state.lower().replace('_', ' ')}) at {r.commit_id[:7]}"
            items.append((r.submitted_at, r.id, text + (f":\n{r.body.strip()}" if r.body else "")))
        lines += [text for _, _, text in sorted(items)]
        for run in self.check_runs(full_name, number):
            mark = {"success": "✔", "failure": "✘", "neutral": "○"}.get(run["conclusion"] or "", "…")
            title = f" — {run['title']}" if run["title"] else ""
            lines.append(f"[{mark}] {run['name']}: {run['conclusion'] or run['status']}{title}")
            for a in run["annotations"]:
                where = f"{a.get('path')}:{a.get('start_line')}"
                lines.append(f"      {where} {a.get('annotation_level')}: {a.get('message')}")
        return "\n".join(lines) + "\n"


def _read_tree(root: Path) -> dict[str, str | None]:
    """Every file under ``root`` (outside ``.git``) by relative path."""
    return {
        str(p.relative_to(root)): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }
