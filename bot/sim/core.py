"""The simulator's shared core: state, Python setup API, events, auth helpers and pagination."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.git.files import git
from bot.sim import gitops
from bot.sim.faults import FaultRule, Faults, RequestLog
from bot.sim.schemas import OpenAPI, openapi, webhook_schemas
from bot.sim.state import (
    CheckSuite,
    Installation,
    Org,
    PullRequest,
    Repo,
    Review,
    Team,
    Token,
    User,
    World,
    now_iso,
    rank,
)
from bot.sim.views import Views
from bot.sim.webhooks import Deliverer

log = logging.getLogger("bot.sim")
DOCS = "https://docs.github.com/rest"
RATE_LIMIT = 5000


class ApiError(Exception):
    """An error answer in GitHub's shape."""

    def __init__(self, status: int, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message": self.message,
            "documentation_url": DOCS,
            "status": str(self.status),
        }
        if self.errors:
            data["errors"] = self.errors
        return data


@dataclass
class Actor:
    """Who is calling: the App (JWT), an installation, or a user."""

    kind: str  # "app" | "installation" | "user" | "anonymous"
    login: str | None = None
    installation_id: int | None = None
    token: str | None = None
    repositories: frozenset[str] | None = None  # an installation token's repository limit


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    schema: str | None = None  # a component to conform to instead of the documented response
    raw: bytes | None = None


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


Handler = Callable[[web.Request, dict[str, str], Any, Actor], Awaitable[Answer]]


class SimCore:
    """State and helpers shared by the HTTP server and its REST route groups."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        app_id: int = 4242,
        app_slug: str = "gitops-bot",
        seed: int = 0,
        token_ttl: float = 3600.0,
        rate_limit: int = RATE_LIMIT,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.repos_dir = self.data_dir / "repos"
        self.repos_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port
        self.token_ttl = token_ttl
        self.webhook_secret = webhook_secret or secrets.token_hex(16)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        self.public_key_pem = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        self.world = World(app_id=app_id, app_slug=app_slug, app_name=app_slug, webhook_url=webhook_url)
        self.bot_login = f"{app_slug}[bot]"
        self.world.users[self.bot_login] = User(
            self.bot_login, self.world.ids.next("user"), app_slug, type="Bot"
        )
        self.faults = Faults(seed=seed)
        self.requests = RequestLog()
        self.api: OpenAPI = openapi()
        self.hooks = webhook_schemas()
        self.views = Views(self.world, "http://placeholder")
        self.deliverer = Deliverer(self.world, self.webhook_secret, self.faults)
        self._runner: web.AppRunner | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self.rate_limit = rate_limit
        self._rate: dict[str, tuple[int, int]] = {}  # token -> (used, reset time) of the current hour
        self.base_url = ""

    def git_url(self, full_name: str) -> str:
        """The HTTP clone URL of a repository."""
        return f"{self.base_url}/{full_name}.git"

    def create_user(self, login: str, *, name: str | None = None, email: str | None = None) -> User:
        """Create a user with one verified email (``<login>@users.sim.localhost`` by default)."""
        if login in self.world.users or login in self.world.orgs:
            raise ValueError(f"account {login!r} already exists")
        user = User(login, self.world.ids.next("user"), name or login)
        user.emails[email or f"{login}@users.sim.localhost"] = True
        self.world.users[login] = user
        return user

    def add_email(self, login: str, email: str, *, verified: bool = True) -> None:
        self.world.users[login].emails[email] = verified

    def add_ssh_signing_key(self, login: str, public_key: str) -> None:
        """Register an SSH signing key (the ``.pub`` line) for a user."""
        self.world.users[login].ssh_signing_keys.append(public_key.strip())

    def add_gpg_key(self, login: str, armored_public_key: str) -> None:
        """Register an ASCII-armoured OpenPGP public key for a user."""
        self.world.users[login].gpg_keys.append(armored_public_key)

    def create_org(self, login: str, *, members: list[str] | tuple[str, ...] = ()) -> Org:
        if login in self.world.users or login in self.world.orgs:
            raise ValueError(f"account {login!r} already exists")
        org = Org(login, self.world.ids.next("user"), set(members))
        self.world.orgs[login] = org
        return org

    def create_team(
        self,
        org: str,
        slug: str,
        *,
        members: list[str] | tuple[str, ...] = (),
        maintainers: list[str] | tuple[str, ...] = (),
        repos: dict[str, str] | None = None,
    ) -> Team:
        """Create a team; ``repos`` maps ``owner/name`` to the team's permission on it."""
        o = self.world.orgs[org]
        team = Team(slug, self.world.ids.next("team"), slug)
        for m in members:
            team.members[m] = "member"
        for m in maintainers:
            team.members[m] = "maintainer"
        o.members.update(team.members)
        team.repos.update(repos or {})
        o.teams[slug] = team
        return team

    def create_repo(
        self, owner: str, name: str, *, default_branch: str = "main", private: bool = True
    ) -> Repo:
        """Create an empty bare repository owned by a user or organisation."""
        if self.world.account(owner) is None:
            raise ValueError(f"no user or organisation {owner!r}")
        full = f"{owner}/{name}"
        if full in self.world.repos:
            raise ValueError(f"repository {full} already exists")
        path = self.repos_dir / owner / f"{name}.git"
        gitops.init_bare(path, default_branch)
        repo = Repo(owner, name, self.world.ids.next("repo"), path, default_branch, private)
        self.world.repos[full] = repo
        self.world.pulls[full] = {}
        self.world.issues[full] = {}
        return repo

    def fork_repo(self, full_name: str, owner: str) -> Repo:
        """``owner`` forks ``full_name``: a repository ``owner/<name>`` with the parent's branches.

        Like GitHub, the fork is a repository of its own (``fork: true``); its owner is admin
        there and nothing more on the parent. Its pushes reach pull requests opened from it on
        the parent; the App hears of the fork's own events only if installed on ``owner``.
        """
        parent = self.world.repos[full_name]
        fork = self.create_repo(
            owner, parent.name, default_branch=parent.default_branch, private=parent.private
        )
        fork.parent = parent.full_name
        git(fork.path, "fetch", "--quiet", "--no-tags", str(parent.path), "+refs/heads/*:refs/heads/*")
        return fork

    def fork_of(self, repo: Repo, owner: str) -> Repo | None:
        """``owner``'s fork of ``repo``, if any."""
        return next(
            (r for r in self.world.repos.values() if r.parent == repo.full_name and r.owner == owner), None
        )

    def set_permission(self, full_name: str, login: str, permission: str) -> None:
        """Make ``login`` a collaborator with ``permission`` (admin, maintain, write, triage, read)."""
        if rank(permission) < 0:
            raise ValueError(f"unknown permission {permission!r}")
        self.world.repos[full_name].collaborators[login] = permission

    def protect_branch(self, full_name: str, branch: str, protection: dict[str, Any]) -> None:
        """Store a branch protection body returned by GET .../branches/{branch}/protection."""
        self.world.repos[full_name].protection[branch] = protection

    def install_app(self, account: str) -> Installation:
        """Install the App on an account (all repositories) and send the ``installation`` webhook."""
        existing = self.world.installation_for(account)
        if existing:
            return existing
        inst = Installation(self.world.ids.next("installation"), account)
        self.world.installations[inst.id] = inst
        repos = [r for r in self.world.repos.values() if r.owner == account]
        payload = {
            "action": "created",
            "installation": self._installation_view(inst),
            "repositories": [
                {
                    "id": r.id,
                    "node_id": f"R_{r.id}",
                    "name": r.name,
                    "full_name": r.full_name,
                    "private": r.private,
                }
                for r in repos
            ],
            "requester": None,
            "sender": self.views.user(account if account in self.world.users else self.bot_login),
        }
        self._send("installation", payload, None, inst)
        return inst

    def user_token(self, login: str, *, ttl: float | None = None) -> str:
        """Issue a personal access token for a user."""
        if login not in self.world.users:
            raise ValueError(f"no user {login!r}")
        value = "ghp_" + secrets.token_hex(18)
        self.world.tokens[value] = Token(value, "user", login, time.time() + (ttl or 10 * 365 * 86400))
        return value

    def installation_token(self, installation_id: int, repositories: list[str] | None = None) -> Token:
        """Issue an installation token directly (tests that skip the JWT flow), optionally for some repos."""
        value = "ghs_" + secrets.token_hex(18)
        limit = frozenset(repositories) if repositories else None
        token = Token(value, "installation", str(installation_id), time.time() + self.token_ttl, limit)
        self.world.tokens[value] = token
        return token

    def app_jwt(self, *, expires_in: int = 540, issued_ago: int = 30) -> str:
        """A valid App JWT, as the App itself would make one."""
        now = int(time.time())
        payload = {"iat": now - issued_ago, "exp": now + expires_in, "iss": str(self.world.app_id)}
        return jwt.encode(payload, self.private_key_pem, algorithm="RS256")

    def pull(self, full_name: str, number: int) -> PullRequest:
        return self.world.pulls[full_name][number]

    def dismiss_review(self, full_name: str, number: int, review_id: int, message: str, by: str) -> Review:
        """Dismiss a review (the route is not in the subset) and send ``pull_request_review dismissed``."""
        pr = self.pull(full_name, number)
        review = next(r for r in pr.reviews if r.id == review_id)
        review.state = "DISMISSED"
        repo = self.world.repos[full_name]
        self._send(
            "pull_request_review",
            {
                "action": "dismissed",
                "review": self._review_hook(pr, review),
                "pull_request": self.views.pull(pr),
            },
            repo,
            sender=by,
        )
        return review

    def request_review(self, full_name: str, number: int, reviewer: str, by: str) -> None:
        """Ask ``reviewer`` to review (the route is not in the subset); sends ``review_requested``."""
        pr = self.pull(full_name, number)
        if reviewer not in pr.requested_reviewers:
            pr.requested_reviewers.append(reviewer)
        self._send(
            "pull_request",
            {
                "action": "review_requested",
                "number": number,
                "requested_reviewer": self.views.user(reviewer),
                "pull_request": self.views.pull(pr),
            },
            self.world.repos[full_name],
            sender=by,
        )

    def rerequest_check_run(self, run_id: int, by: str) -> None:
        """A person clicks "Re-run" on a check run: sends ``check_run rerequested``."""
        run = self.world.runs[run_id]
        payload = {"action": "rerequested", "check_run": self.views.check_run(run)}
        self._send("check_run", payload, self.world.repos[run.repo], sender=by)

    def request_check_action(self, run_id: int, identifier: str, by: str) -> None:
        """A person clicks one of a check run's action buttons: sends ``check_run requested_action``."""
        run = self.world.runs[run_id]
        if identifier not in {a.get("identifier") for a in run.actions}:
            raise ValueError(f"check run {run_id} has no action {identifier!r}")
        payload = {
            "action": "requested_action",
            "check_run": self.views.check_run(run),
            "requested_action": {"identifier": identifier},
        }
        self._send("check_run", payload, self.world.repos[run.repo], sender=by)

    def set_webhook_url(self, url: str | None) -> None:
        """Point the App's webhook at ``url`` (for a bot started after the simulator)."""
        self.world.webhook_url = url

    def add_fault(self, rule: FaultRule) -> FaultRule:
        return self.faults.add(rule)

    async def wait_for_webhooks(self, timeout: float = 30.0) -> None:
        """Return once every queued webhook delivery has been attempted."""
        await self.deliverer.wait_idle(timeout)

    def conform_webhook(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        action = payload.get("action") if isinstance(payload.get("action"), str) else None
        try:
            schema = self.hooks.schema_for(event, action)
        except KeyError:
            return payload
        result: dict[str, Any] = self.hooks.conform(schema, payload)
        return result

    def _installation_view(self, inst: Installation) -> dict[str, Any]:
        return {
            "id": inst.id,
            "account": self.views.user(inst.account),
            "repository_selection": inst.repository_selection,
            "access_tokens_url": f"{self.base_url}/app/installations/{inst.id}/access_tokens",
            "repositories_url": f"{self.base_url}/installation/repositories",
            "html_url": f"{self.base_url}/settings/installations/{inst.id}",
            "app_id": self.world.app_id,
            "app_slug": self.world.app_slug,
            "target_id": self.world.account_id(inst.account),
            "target_type": "Organization" if inst.account in self.world.orgs else "User",
            "permissions": self.views.app()["permissions"],
            "events": self.views.app()["events"],
            "created_at": inst.created_at,
            "updated_at": inst.created_at,
            "single_file_name": None,
            "suspended_at": None,
            "suspended_by": None,
        }

    def _send(
        self,
        event: str,
        payload: dict[str, Any],
        repo: Repo | None,
        inst: Installation | None = None,
        sender: str | None = None,
    ) -> None:
        if repo is not None:
            inst = self.world.installation_for(repo.owner)
            payload.setdefault("repository", self.views.repo(repo))
            if repo.owner in self.world.orgs:
                org = self.world.orgs[repo.owner]
                payload.setdefault(
                    "organization",
                    {
                        "login": org.login,
                        "id": org.id,
                        "node_id": f"O_{org.id}",
                        "url": f"{self.base_url}/orgs/{org.login}",
                        "repos_url": f"{self.base_url}/orgs/{org.login}/repos",
                        "events_url": f"{self.base_url}/orgs/{org.login}/events",
                        "hooks_url": f"{self.base_url}/orgs/{org.login}/hooks",
                        "issues_url": f"{self.base_url}/orgs/{org.login}/issues",
                        "members_url": f"{self.base_url}/orgs/{org.login}/members{{/member}}",
                        "public_members_url": f"{self.base_url}/orgs/{org.login}/public_members{{/member}}",
                        "avatar_url": f"{self.base_url}/avatars/{org.login}",
                        "description": None,
                    },
                )
        if inst is None:
            return  # the App is not installed there: GitHub sends it nothing
        if sender is not None:
            payload["sender"] = self.views.user(sender)
        payload.setdefault("sender", self.views.user(self.bot_login))
        if "installation" not in payload:
            payload["installation"] = {"id": inst.id, "node_id": f"MDIz_{inst.id}"}
        shaped = self.conform_webhook(event, payload)
        self.deliverer.enqueue(event, shaped, inst.id, repo.id if repo else None)

    def _window(self, actor: Actor | None) -> tuple[str, int, int]:
        key = actor.token if actor and actor.token else "anonymous"
        used, reset = self._rate.get(key, (0, 0))
        now = int(time.time())
        if now >= reset:
            used, reset = 0, now + 3600
        return key, used, reset

    def _spend(self, actor: Actor | None) -> tuple[int, int]:
        """Count one request against the caller's hourly budget; return (used, reset)."""
        key, used, reset = self._window(actor)
        self._rate[key] = (used + 1, reset)
        return used + 1, reset

    def _check_budget(self, actor: Actor) -> None:
        """Refuse with GitHub's primary rate-limit 403 once the hourly budget is spent."""
        _, used, _ = self._window(actor)
        if used >= self.rate_limit:
            who = f"installation ID {actor.installation_id}" if actor.installation_id else "this token"
            raise ApiError(403, f"API rate limit exceeded for {who}.")

    def _repo(self, params: dict[str, str], actor: Actor, need: str = "read") -> Repo:
        repo = self.world.repos.get(f"{params['owner']}/{params['repo']}")
        if repo is None:
            raise not_found()
        if actor.kind == "installation":
            inst = self.world.installations.get(actor.installation_id or 0)
            if inst is None or inst.account != repo.owner:
                raise not_found()
            if actor.repositories is not None and repo.name not in actor.repositories:
                raise not_found()
            return repo
        if actor.kind == "user" and actor.login:
            perm = self.world.permission(repo, actor.login)
            if rank(perm) < 0:
                raise not_found()
            if rank(perm) < rank(need):
                raise ApiError(403, "Resource not accessible by personal access token")
            return repo
        raise not_found()

    def _page(self, request: web.Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        try:
            per_page = min(max(int(request.query.get("per_page", "30")), 1), 100)
            page = max(int(request.query.get("page", "1")), 1)
        except ValueError as exc:
            raise ApiError(422, "Invalid request.\n\nper_page and page must be integers.") from exc
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []

        def url(p: int) -> str:
            query = dict(request.query)
            query.update(page=str(p), per_page=str(per_page))
            return f"{self.base_url}{request.path}?{urlencode(query)}"

        if page < last:
            links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
        if page > 1:
            links += [f'<{url(1)}>; rel="first"', f'<{url(page - 1)}>; rel="prev"']
        return chunk, ({"Link": ", ".join(links)} if links else {})

    def _after_push(self, repo: Repo, before: dict[str, str], after: dict[str, str], login: str) -> None:
        for ref in sorted(set(before) | set(after)):
            old, new = before.get(ref, gitops.ZERO), after.get(ref, gitops.ZERO)
            if old == new or not ref.startswith("refs/heads/"):
                continue
            self.ref_moved(repo, ref, old, new, login)

    def ref_moved(self, repo: Repo, ref: str, old: str, new: str, login: str) -> None:
        """React to a branch update: push webhook, check suite, PR synchronize, ``refs/pull/N/head``."""
        branch = ref.removeprefix("refs/heads/")
        commits = []
        if new != gitops.ZERO:
            base = old if old != gitops.ZERO else None
            shas = gitops.rev_list(repo.path, base, new) if base else [new]
            for sha in shas[-20:]:
                c = self.views.head_commit(repo, sha)
                files = gitops.changed_files(repo.path, f"{sha}^", sha) if base else []
                c.update(
                    url=f"{self.base_url}/{repo.full_name}/commit/{sha}",
                    distinct=True,
                    added=[f["filename"] for f in files if f["status"] == "added"],
                    removed=[f["filename"] for f in files if f["status"] == "removed"],
                    modified=[f["filename"] for f in files if f["status"] not in ("added", "removed")],
                )
                commits.append(c)
        pusher_user = self.world.users.get(login)
        email = next(iter(pusher_user.emails), None) if pusher_user else None
        payload: dict[str, Any] = {
            "ref": ref,
            "before": old,
            "after": new,
            "created": old == gitops.ZERO,
            "deleted": new == gitops.ZERO,
            "forced": old != gitops.ZERO
            and new != gitops.ZERO
            and not gitops.is_ancestor(repo.path, old, new),
            "base_ref": None,
            "compare": f"{self.base_url}/{repo.full_name}/compare/{old[:12]}...{new[:12]}",
            "commits": commits,
            "head_commit": commits[-1] if commits else None,
            "pusher": {"name": login, "email": email},
        }
        self._send("push", payload, repo, sender=login)
        if new == gitops.ZERO:
            return
        if self.world.installation_for(repo.owner) and not any(
            s.repo == repo.full_name and s.head_sha == new for s in self.world.suites.values()
        ):
            suite = CheckSuite(self.world.ids.next("suite"), repo.full_name, new, branch, self.world.app_id)
            self.world.suites[suite.id] = suite
            self._send(
                "check_suite",
                {"action": "requested", "check_suite": self.views.check_suite(suite)},
                repo,
                sender=login,
            )
        for target, pr in self._pulls_headed_at(repo):
            if pr.state != "open":
                continue
            if pr.head_ref == branch and pr.head_repo == repo.full_name and pr.head_sha != new:
                before_sha = pr.head_sha
                if target is not repo:  # a fork's branch: its commits become visible in the parent
                    gitops.fetch_objects(target.path, repo.path, new)
                pr.head_sha = new
                pr.updated_at = now_iso()
                self._pull_refs(target, pr)
                self._send(
                    "pull_request",
                    {
                        "action": "synchronize",
                        "number": pr.number,
                        "before": before_sha,
                        "after": new,
                        "pull_request": self.views.pull(pr),
                    },
                    target,
                    sender=login,
                )
                self.head_moved(target, pr)
            if target is repo and pr.base_ref == branch:
                pr.base_sha = new
                self._pull_refs(repo, pr)

    def _pulls_headed_at(self, repo: Repo) -> list[tuple[Repo, PullRequest]]:
        """The repository's own pull requests, and those of its parent whose head is in this fork."""
        found = [(repo, pr) for pr in self.world.pulls[repo.full_name].values()]
        parent = self.world.repos.get(repo.parent) if repo.parent else None
        if parent is not None:
            found += [
                (parent, pr)
                for pr in self.world.pulls[parent.full_name].values()
                if pr.head_repo == repo.full_name
            ]
        return found

    def head_moved(self, repo: Repo, pr: PullRequest) -> None:
        """A pull request's head moved (the merge queue removes it from its queue)."""

    def checks_changed(self, repo: Repo, sha: str) -> None:
        """A check run on ``sha`` was written (the merge queue decides on its groups)."""

    def _pull_refs(self, repo: Repo, pr: PullRequest) -> None:
        """Move ``refs/pull/N/head`` to the head, ``refs/pull/N/merge`` to a test merge."""
        # like GitHub, a conflicting pull request has no merge ref
        gitops.update_ref(repo.path, f"refs/pull/{pr.number}/head", pr.head_sha)
        merge_ref = f"refs/pull/{pr.number}/merge"
        tree = gitops.merge_tree(repo.path, pr.base_sha, pr.head_sha)
        if tree is None:
            git(repo.path, "update-ref", "-d", merge_ref, check=False)
            return
        github = gitops.Person("GitHub", "noreply@github.com", "")
        message = f"Merge {pr.head_sha} into {pr.base_sha}\n"
        sha = gitops.commit_tree(repo.path, tree, [pr.base_sha, pr.head_sha], message, github, github)
        gitops.update_ref(repo.path, merge_ref, sha)

    def info(self) -> dict[str, Any]:
        """What a client needs to talk to this simulator (no tokens)."""
        return {
            "base_url": self.base_url,
            "app_id": self.world.app_id,
            "app_slug": self.world.app_slug,
            "webhook_url": self.world.webhook_url,
            "installations": {i.account: i.id for i in self.world.installations.values()},
            "repositories": {r.full_name: self.git_url(r.full_name) for r in self.world.repos.values()},
        }

    def _person(self, a: Actor) -> gitops.Person:
        if a.kind == "user" and a.login:
            user = self.world.users[a.login]
            email = next((e for e, ok in user.emails.items() if ok), f"{a.login}@users.sim.localhost")
            return gitops.Person(user.name, email, "")
        bot = self.world.users[self.bot_login]
        return gitops.Person(self.bot_login, f"{bot.id}+{self.bot_login}@users.noreply.sim.localhost", "")

    def _pr(self, repo: Repo, number: str) -> PullRequest:
        pr = self.world.pulls[repo.full_name].get(int(number)) if number.isdigit() else None
        if pr is None:
            raise not_found()
        return pr

    def _review_hook(self, pr: PullRequest, review: Review) -> dict[str, Any]:
        """A review as webhooks carry it: GitHub lower-cases ``state`` there."""
        data = self.views.review(pr, review)
        data["state"] = data["state"].lower()
        return data


def check_comment_length(body: str) -> None:
    """Refuse a comment body over GitHub's 65,536-character limit with its 422."""
    if len(body) > 65536:
        error = {
            "resource": "IssueComment",
            "code": "custom",
            "field": "body",
            "message": "Body is too long (maximum is 65536 characters)",
        }
        raise ApiError(422, "Validation Failed", [error])
