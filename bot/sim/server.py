"""The simulator's HTTP server: REST subset, git smart HTTP, App auth, faults, admin routes.

One aiohttp application answers everything under one base URL:

- ``/{owner}/{repo}.git/...``: git smart HTTP through ``git http-backend`` (Basic auth with a token);
- ``/_sim/...``: admin routes for out-of-process tests (faults, request log, deliveries);
- everything else: the REST operations of ``rest-subset.openapi.json``, matched by method and path
  template; an unknown route gets GitHub's 404.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.git.files import GIT_ENV, GitError, git
from bot.sim import gitops
from bot.sim.faults import FaultRule, Faults, LoggedRequest, RequestLog
from bot.sim.schemas import OpenAPI, Operation, openapi, webhook_schemas
from bot.sim.state import (
    CheckRun,
    CheckSuite,
    Installation,
    IssueComment,
    Label,
    Org,
    PullRequest,
    Repo,
    Review,
    Status,
    Team,
    Token,
    User,
    World,
    iso,
    now_iso,
    rank,
)
from bot.sim.views import Views
from bot.sim.webhooks import Deliverer

log = logging.getLogger("bot.sim")
DOCS = "https://docs.github.com/rest"
RATE_LIMIT = 5000
JWT_ROUTES = {
    "apps/get-authenticated",
    "apps/list-webhook-deliveries",
    "apps/redeliver-webhook-delivery",
    "apps/create-installation-access-token",
    "apps/get-repo-installation",
}


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


Handler = Callable[[web.Request, dict[str, str], Any, Actor], Awaitable[Answer]]


def _not_found() -> ApiError:
    return ApiError(404, "Not Found")


class Simulator:
    """A local GitHub: start it, create people and repositories, point the bot at :attr:`base_url`."""

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
        self._handlers: dict[str, Handler] = self._handler_table()
        self.base_url = ""

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> Simulator:
        """Listen on ``host:port`` (0 picks a free port) and start sending webhooks."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        self.base_url = f"http://{self.host}:{self.port}"
        self.views.base = self.base_url
        await self.deliverer.start()
        return self

    async def stop(self) -> None:
        """Stop sending webhooks and close the server."""
        await self.deliverer.stop()
        if self._runner:
            await self._runner.cleanup()

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def git_url(self, full_name: str) -> str:
        """The HTTP clone URL of a repository."""
        return f"{self.base_url}/{full_name}.git"

    # ----------------------------------------------------------------- world setup (Python API)
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
        return repo

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

    # ----------------------------------------------------------------- HTTP dispatch
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sim/"):
            return await self._admin(request)
        if ".git/" in path or path.endswith(".git"):
            return await self._git(request)
        # match on the raw path, so an encoded slash (a label "env%2Fprod") stays inside its parameter
        raw_path = request.raw_path.split("?", 1)[0]
        found = self.api.find(request.method, raw_path)
        if found is not None:
            found = (found[0], {k: unquote(v) for k, v in found[1].items()})
        route = found[0].template if found else path
        fault = self.faults.pick(request.method, route)
        actor: Actor | None = None
        try:
            if fault is not None:
                if fault.kind == "drop_connection":
                    self._log(request, route, 0, None, fault.kind)
                answer = await self._fault(fault, request)
                if answer is None:
                    fault = None  # a slow answer still answers normally
                else:
                    self._log(request, route, answer.status, None, fault.kind)
                    return self._respond(answer, None)
            if found is None:
                raise _not_found()
            op, params = found
            actor = self._authenticate(request, op)
            if op.operation_id != "rate-limit/get":
                self._check_budget(actor)
            body = await self._body(request, op)
            answer = await self._handlers[op.operation_id](request, params, body, actor)
            answer = self._shape(op, answer)
        except ApiError as err:
            answer = Answer(err.status, err.body())
        except (GitError, subprocess.CalledProcessError) as exc:
            log.warning("git failed while answering %s %s: %s", request.method, path, exc)
            answer = Answer(
                422, {"message": "Git operation failed", "documentation_url": DOCS, "status": "422"}
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            # a simulator bug must still answer like a server, and say where to look
            log.exception("simulator error on %s %s", request.method, path)
            answer = Answer(
                500,
                {
                    "message": f"Simulator error: {type(exc).__name__}",
                    "documentation_url": DOCS,
                    "status": "500",
                },
            )
        self._log(request, route, answer.status, actor, fault.kind if fault else None)
        return self._respond(answer, actor)

    def _log(
        self, request: web.Request, route: str, status: int, actor: Actor | None, fault: str | None
    ) -> None:
        who = None
        if actor is not None:
            who = actor.login or (
                f"installation:{actor.installation_id}" if actor.installation_id else actor.kind
            )
        self.requests.add(LoggedRequest(request.method, route, request.path_qs, status, who, fault))

    async def _fault(self, rule: FaultRule, request: web.Request) -> Answer | None:
        if rule.kind == "slow":
            await asyncio.sleep(rule.delay)
            return None
        if rule.kind == "drop_connection":
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError
        if rule.kind == "secondary_rate_limit":
            msg = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
            return Answer(
                403, {"message": msg, "documentation_url": DOCS}, {"Retry-After": str(rule.retry_after)}
            )
        if rule.kind == "rate_limit_429":
            msg = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
            return Answer(
                429, {"message": msg, "documentation_url": DOCS}, {"Retry-After": str(rule.retry_after)}
            )
        return Answer(rule.status, {"message": "Server Error", "documentation_url": DOCS})

    def _respond(self, answer: Answer, actor: Actor | None) -> web.Response:
        headers = {
            "X-GitHub-Request-Id": secrets.token_hex(8).upper(),
            "X-GitHub-Media-Type": "github.v3; format=json",
            **answer.headers,
        }
        used, reset = self._spend(actor)
        headers.update(
            {
                "X-RateLimit-Limit": str(self.rate_limit),
                "X-RateLimit-Remaining": str(max(self.rate_limit - used, 0)),
                "X-RateLimit-Used": str(used),
                "X-RateLimit-Reset": str(reset),
                "X-RateLimit-Resource": "core",
            }
        )
        if answer.raw is not None:
            return web.Response(status=answer.status, body=answer.raw, headers=headers)
        if answer.status == 204 or answer.body is None:
            return web.Response(status=answer.status, headers=headers)
        return web.json_response(answer.body, status=answer.status, headers=headers)

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

    def _shape(self, op: Operation, answer: Answer) -> Answer:
        if answer.raw is not None or answer.body is None:
            return answer
        if answer.schema:
            schema: dict[str, Any] | None = {"$ref": f"#/components/schemas/{answer.schema}"}
        else:
            schema = self.api.response_schema(op, answer.status)
        if schema is not None:
            answer.body = self.api.conform(schema, answer.body)
        return answer

    async def _body(self, request: web.Request, op: Operation) -> Any:
        schema = self.api.request_schema(op)
        if request.method in ("GET", "DELETE") and not request.can_read_body:
            return None
        raw = await request.read()
        if not raw:
            body: Any = None
        else:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise ApiError(400, "Problems parsing JSON") from exc
        if schema is None:
            return body
        if body is None:
            required = op.spec.get("requestBody", {}).get("required", False)
            if not required:
                return None
            body = {}
        errors = self.api.request_errors(schema, body)
        if errors:
            text = "Invalid request.\n\n" + "\n".join(errors)
            raise ApiError(422, text)
        return body

    # ----------------------------------------------------------------- auth
    def _credentials(self, request: web.Request) -> tuple[str, str] | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme in ("token", "bearer") and value:
            return scheme, value.strip()
        if scheme == "basic" and value:
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return None
            return "basic", password or user
        return None

    def _authenticate(self, request: web.Request, op: Operation) -> Actor:
        creds = self._credentials(request)
        if op.operation_id == "rate-limit/get" and creds is None:
            return Actor("anonymous")
        if creds is None:
            raise ApiError(401, "Requires authentication")
        _, value = creds
        if value.count(".") == 2 and value.startswith("ey"):
            self._verify_jwt(value)
            if op.operation_id not in JWT_ROUTES:
                raise ApiError(
                    401,
                    "A JSON web token could not be used to authenticate this request; "
                    "use an installation token",
                )
            return Actor("app", token=value)
        if op.operation_id in JWT_ROUTES:
            raise ApiError(401, "A JSON web token could not be decoded")
        token = self.world.tokens.get(value)
        if token is None or token.expired():
            raise ApiError(401, "Bad credentials")
        if token.kind == "installation":
            inst_id = int(token.subject)
            if inst_id not in self.world.installations:
                raise ApiError(401, "Bad credentials")
            return Actor("installation", self.bot_login, inst_id, value, token.repositories)
        return Actor("user", token.subject, None, value)

    def _verify_jwt(self, value: str) -> None:
        try:
            claims = jwt.decode(
                value,
                self.public_key_pem,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
                leeway=60,
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(
                401,
                "'Expiration time' claim ('exp') must be a numeric value representing the future time "
                "at which the assertion expires",
            ) from exc
        except jwt.ImmatureSignatureError as exc:
            raise ApiError(
                401,
                "'Issued at' claim ('iat') must be an Integer representing the time that the "
                "assertion was issued",
            ) from exc
        except jwt.PyJWTError as exc:
            raise ApiError(401, "A JSON web token could not be decoded") from exc
        if str(claims.get("iss")) != str(self.world.app_id):
            raise ApiError(401, "'Issuer' claim ('iss') must be an Integer")
        if int(claims["exp"]) - int(claims["iat"]) > 600 + 60:
            raise ApiError(401, "'Expiration time' claim ('exp') is too far in the future")

    def _repo(self, params: dict[str, str], actor: Actor, need: str = "read") -> Repo:
        repo = self.world.repos.get(f"{params['owner']}/{params['repo']}")
        if repo is None:
            raise _not_found()
        if actor.kind == "installation":
            inst = self.world.installations.get(actor.installation_id or 0)
            if inst is None or inst.account != repo.owner:
                raise _not_found()
            if actor.repositories is not None and repo.name not in actor.repositories:
                raise _not_found()
            return repo
        if actor.kind == "user" and actor.login:
            perm = self.world.permission(repo, actor.login)
            if rank(perm) < 0:
                raise _not_found()
            if rank(perm) < rank(need):
                raise ApiError(403, "Resource not accessible by personal access token")
            return repo
        raise _not_found()

    # ----------------------------------------------------------------- pagination
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

    # ----------------------------------------------------------------- git smart HTTP
    async def _git(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        repo_part, _, rest = path.lstrip("/").partition(".git")
        repo = self.world.repos.get(repo_part)
        service = request.query.get("service") or rest.rsplit("/", 1)[-1]
        writing = service == "git-receive-pack"
        creds = self._credentials(request)
        challenge = {"WWW-Authenticate": 'Basic realm="GitHub"'}
        route = f"/{{owner}}/{{repo}}.git{rest}"
        if creds is None:
            self._log(request, route, 401, None, None)
            return web.Response(status=401, text="Authentication required\n", headers=challenge)
        token = self.world.tokens.get(creds[1])
        if token is None or token.expired() or repo is None:
            self._log(request, route, 401 if repo else 404, None, None)
            if repo is None:
                return web.Response(status=404, text="Repository not found.\n")
            return web.Response(status=401, text="Invalid username or token.\n", headers=challenge)
        if token.kind == "installation":
            inst = self.world.installations.get(int(token.subject))
            allowed = inst is not None and inst.account == repo.owner
            allowed = allowed and (token.repositories is None or repo.name in token.repositories)
            login = self.bot_login
        else:
            login = token.subject
            perm = self.world.permission(repo, login)
            allowed = rank(perm) >= rank("write" if writing else "read")
        if not allowed:
            self._log(request, route, 403, None, None)
            return web.Response(status=403, text=f"Permission to {repo.full_name}.git denied to {login}.\n")
        body = await request.read()
        lock = self._locks.setdefault(repo.full_name, asyncio.Lock())
        async with lock if writing else contextlib.nullcontext():
            before = gitops.refs(repo.path) if writing and request.method == "POST" else None
            status, headers, out = await self._cgi(request, repo, rest, login, body)
            if before is not None:
                after = gitops.refs(repo.path)
                self._after_push(repo, before, after, login)
        self._log(request, route, status, Actor("user", login), None)
        return web.Response(status=status, body=out, headers=headers)

    async def _cgi(
        self, request: web.Request, repo: Repo, rest: str, login: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        env = dict(GIT_ENV)
        env.update(
            GIT_PROJECT_ROOT=str(self.repos_dir),
            GIT_HTTP_EXPORT_ALL="1",
            REMOTE_USER=login,
            REMOTE_ADDR=request.remote or "127.0.0.1",
            REQUEST_METHOD=request.method,
            PATH_INFO=f"/{repo.owner}/{repo.name}.git{rest}",
            QUERY_STRING=request.query_string,
            CONTENT_TYPE=request.headers.get("Content-Type", ""),
            CONTENT_LENGTH=str(len(body)),
            GIT_HTTP_MAX_REQUEST_BUFFER="100M",
        )
        if "Content-Encoding" in request.headers:
            env["HTTP_CONTENT_ENCODING"] = request.headers["Content-Encoding"]
        if "Git-Protocol" in request.headers:
            env["GIT_PROTOCOL"] = request.headers["Git-Protocol"]
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await proc.communicate(body)
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _ and b"\n\n" in out:
            head, _, payload = out.partition(b"\n\n")
        status = 200
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        if proc.returncode != 0 and not out:
            log.warning("git http-backend failed: %s", err.decode(errors="replace").strip())
            return 500, {}, b"git http-backend failed\n"
        return status, headers, payload

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
        for pr in self.world.pulls[repo.full_name].values():
            if pr.state != "open":
                continue
            if pr.head_ref == branch and pr.head_repo == repo.full_name and pr.head_sha != new:
                before_sha = pr.head_sha
                pr.head_sha = new
                pr.updated_at = now_iso()
                self._pull_refs(repo, pr)
                self._send(
                    "pull_request",
                    {
                        "action": "synchronize",
                        "number": pr.number,
                        "before": before_sha,
                        "after": new,
                        "pull_request": self.views.pull(pr),
                    },
                    repo,
                    sender=login,
                )
            if pr.base_ref == branch:
                pr.base_sha = new
                self._pull_refs(repo, pr)

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

    # ----------------------------------------------------------------- admin routes
    async def _admin(self, request: web.Request) -> web.Response:
        path = request.path.removeprefix("/_sim")
        if path == "/requests" and request.method == "GET":
            entries = [e.__dict__ for e in self.requests.entries]
            return web.json_response({"counts": dict(self.requests.counts()), "requests": entries})
        if path == "/requests" and request.method == "DELETE":
            self.requests.clear()
            return web.Response(status=204)
        if path == "/faults" and request.method == "GET":
            return web.json_response([r.to_json() for r in self.faults.rules])
        if path == "/faults" and request.method == "POST":
            try:
                data = await request.json()
                if not isinstance(data, dict):
                    raise TypeError("send one JSON object with at least a 'kind'")
                rule = self.faults.add(FaultRule(**{k: v for k, v in data.items() if k != "fired"}))
            except (ValueError, TypeError) as exc:
                return web.json_response({"message": f"bad fault rule: {exc}"}, status=422)
            return web.json_response(rule.to_json(), status=201)
        if path == "/faults" and request.method == "DELETE":
            seed = request.query.get("seed")
            if seed and not seed.lstrip("-").isdigit():
                return web.json_response({"message": "seed must be an integer"}, status=422)
            self.faults.clear(int(seed) if seed else None)
            return web.Response(status=204)
        if path == "/deliveries" and request.method == "GET":
            out = [
                {
                    "id": d.id,
                    "guid": d.guid,
                    "event": d.event,
                    "action": d.action,
                    "status": d.status,
                    "status_code": d.status_code,
                    "redelivery": d.redelivery,
                }
                for d in self.world.deliveries
            ]
            return web.json_response(out)
        if path == "/wait" and request.method == "POST":
            await self.wait_for_webhooks()
            return web.Response(status=204)
        if path == "/info" and request.method == "GET":
            return web.json_response(self.info())
        return web.json_response({"message": "Not Found"}, status=404)

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

    # ----------------------------------------------------------------- REST handlers
    def _handler_table(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {}
        for name in dir(self):
            if name.startswith("op_"):
                table[name[3:].replace("__", "/").replace("_", "-")] = getattr(self, name)
        return table

    # apps
    async def op_apps__get_authenticated(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        return Answer(200, self.views.app())

    async def op_apps__create_installation_access_token(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        inst = (
            self.world.installations.get(int(p["installation_id"]))
            if p["installation_id"].isdigit()
            else None
        )
        if inst is None:
            raise _not_found()
        repos = [r for r in self.world.repos.values() if r.owner == inst.account]
        wanted = (b or {}).get("repositories")
        if wanted:
            unknown = sorted(set(wanted) - {r.name for r in repos})
            if unknown:
                raise ApiError(
                    422,
                    f"There is at least one repository that does not exist or is not "
                    f"accessible to the parent installation: {', '.join(unknown)}",
                )
            repos = [r for r in repos if r.name in wanted]
        token = self.installation_token(inst.id, wanted)
        return Answer(
            201,
            {
                "token": token.value,
                "expires_at": iso(token.expires_at),
                "permissions": (b or {}).get("permissions") or self.views.app()["permissions"],
                "repository_selection": "selected" if b and b.get("repositories") else "all",
                "repositories": [self.views.repo(r) for r in repos],
            },
        )

    async def op_apps__get_repo_installation(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        repo = self.world.repos.get(f"{p['owner']}/{p['repo']}")
        inst = self.world.installation_for(repo.owner) if repo else None
        if inst is None:
            raise _not_found()
        return Answer(200, self._installation_view(inst))

    async def op_apps__list_webhook_deliveries(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        try:
            per_page = min(max(int(req.query.get("per_page") or 30), 1), 100)
        except ValueError as exc:
            raise ApiError(422, "Invalid request.\n\nper_page must be an integer.") from exc
        cursor = req.query.get("cursor")
        items = sorted(self.world.deliveries, key=lambda d: d.id, reverse=True)
        if cursor:
            items = [d for d in items if d.id < int(cursor)] if cursor.isdigit() else []
        chunk = items[:per_page]
        headers = {}
        if len(items) > per_page:
            nxt = f"{self.base_url}{req.path}?{urlencode({'per_page': per_page, 'cursor': chunk[-1].id})}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        body = [
            {
                "id": d.id,
                "guid": d.guid,
                "delivered_at": d.delivered_at,
                "redelivery": d.redelivery,
                "duration": d.duration,
                "status": d.status,
                "status_code": d.status_code,
                "event": d.event,
                "action": d.action,
                "installation_id": d.installation_id,
                "repository_id": d.repository_id,
                "throttled_at": d.throttled_at,
            }
            for d in chunk
        ]
        return Answer(200, body, headers)

    async def op_apps__redeliver_webhook_delivery(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        target = next((d for d in self.world.deliveries if str(d.id) == p["delivery_id"]), None)
        if target is None:
            raise _not_found()
        self.deliverer.redeliver(target)
        return Answer(202, {})

    async def op_rate_limit__get(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        _, used, reset = self._window(a)
        core = {"limit": self.rate_limit, "used": used, "remaining": self.rate_limit - used, "reset": reset}
        return Answer(
            200, {"resources": {"core": core, "search": dict(core), "graphql": dict(core)}, "rate": core}
        )

    async def op_teams__get_membership_for_user_in_org(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        org = self.world.orgs.get(p["org"])
        team = org.teams.get(p["team_slug"]) if org else None
        if a.kind == "installation":
            inst = self.world.installations.get(a.installation_id or 0)
            if inst is None or inst.account != p["org"]:
                raise _not_found()
        if team is None or p["username"] not in team.members:
            raise _not_found()
        return Answer(
            200,
            {
                "url": f"{self.base_url}/organizations/{org.id if org else 0}/team/{team.id}"
                f"/memberships/{p['username']}",
                "role": team.members[p["username"]],
                "state": "active",
            },
        )

    # repos
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
            raise _not_found()
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
            raise _not_found()
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
            raise _not_found()
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
            raise _not_found()
        base, head = gitops.resolve(repo.path, base_name), gitops.resolve(repo.path, head_name)
        if base is None or head is None:
            raise _not_found()
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
            raise _not_found()
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

    # git data
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
            raise _not_found()
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
            raise _not_found()
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
            raise _not_found()
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
            raise _not_found()
        return Answer(200, self.views.git_commit(repo, p["commit_sha"]))

    def _person(self, a: Actor) -> gitops.Person:
        if a.kind == "user" and a.login:
            user = self.world.users[a.login]
            email = next((e for e, ok in user.emails.items() if ok), f"{a.login}@users.sim.localhost")
            return gitops.Person(user.name, email, "")
        bot = self.world.users[self.bot_login]
        return gitops.Person(self.bot_login, f"{bot.id}+{self.bot_login}@users.noreply.sim.localhost", "")

    # checks
    def _suite_for(self, repo: Repo, sha: str) -> CheckSuite:
        for s in self.world.suites.values():
            if s.repo == repo.full_name and s.head_sha == sha and s.app_id == self.world.app_id:
                return s
        branch = next(
            (
                r.removeprefix("refs/heads/")
                for r, v in gitops.refs(repo.path).items()
                if v == sha and r.startswith("refs/heads/")
            ),
            None,
        )
        suite = CheckSuite(self.world.ids.next("suite"), repo.full_name, sha, branch, self.world.app_id)
        self.world.suites[suite.id] = suite
        return suite

    def _apply_run(self, run: CheckRun, b: dict[str, Any]) -> None:
        for key in ("name", "details_url", "external_id", "started_at", "completed_at"):
            if key in b:
                setattr(run, key, b[key])
        if "status" in b:
            run.status = b["status"]
        if "conclusion" in b:
            run.conclusion = b["conclusion"]
            run.status = "completed"
        if run.status == "completed" and run.conclusion is None:
            raise ApiError(422, "Invalid request.\n\nconclusion is required when status is completed.")
        if run.status == "completed" and not run.completed_at:
            run.completed_at = now_iso()
        if run.status == "in_progress" and not run.started_at:
            run.started_at = now_iso()
        if b.get("output"):
            out = b["output"]
            run.output = {k: out.get(k, run.output.get(k)) for k in ("title", "summary", "text")}
            run.annotations.extend(out.get("annotations") or [])
        if "actions" in b:
            run.actions = b["actions"]

    def _settle_suite(self, repo: Repo, suite: CheckSuite, sender: str | None) -> None:
        runs = [r for r in self.world.runs.values() if r.suite_id == suite.id]
        if runs and all(r.status == "completed" for r in runs):
            order = [
                "action_required",
                "cancelled",
                "timed_out",
                "failure",
                "neutral",
                "skipped",
                "stale",
                "success",
            ]
            conclusion = min(
                (r.conclusion or "neutral" for r in runs), key=lambda c: order.index(c) if c in order else 0
            )
            changed = suite.status != "completed" or suite.conclusion != conclusion
            suite.status, suite.conclusion = "completed", conclusion
            suite.updated_at = now_iso()
            if changed:
                self._send(
                    "check_suite",
                    {"action": "completed", "check_suite": self.views.check_suite(suite)},
                    repo,
                    sender=sender,
                )
        elif runs:
            suite.status, suite.conclusion = "in_progress", None

    async def op_checks__create(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "write")
        if a.kind != "installation":
            raise ApiError(403, "You must authenticate as a GitHub App to create a check run")
        sha = gitops.resolve(repo.path, b["head_sha"])
        if sha is None or sha != b["head_sha"]:
            raise ApiError(422, "Invalid request.\n\nNo commit found for SHA: " + b["head_sha"])
        suite = self._suite_for(repo, sha)
        run = CheckRun(
            self.world.ids.next("check_run"), repo.full_name, sha, b["name"], suite.id, self.world.app_id
        )
        self._apply_run(run, b)
        self.world.runs[run.id] = run
        self._send("check_run", {"action": "created", "check_run": self.views.check_run(run)}, repo)
        if run.status == "completed":
            self._send("check_run", {"action": "completed", "check_run": self.views.check_run(run)}, repo)
        self._settle_suite(repo, suite, None)
        return Answer(201, self.views.check_run(run))

    async def op_checks__update(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a, "write")
        run = self.world.runs.get(int(p["check_run_id"])) if p["check_run_id"].isdigit() else None
        if run is None or run.repo != repo.full_name:
            raise _not_found()
        if a.kind != "installation":
            raise ApiError(403, "Only the GitHub App that created a check run can update it")
        was = run.status
        self._apply_run(run, b)
        if run.status == "completed" and was != "completed":
            self._send("check_run", {"action": "completed", "check_run": self.views.check_run(run)}, repo)
        self._settle_suite(repo, self.world.suites[run.suite_id], None)
        return Answer(200, self.views.check_run(run))

    async def op_checks__list_for_ref(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        repo = self._repo(p, a)
        sha = gitops.resolve(repo.path, p["ref"])
        if sha is None:
            raise _not_found()
        runs = [r for r in self.world.runs.values() if r.repo == repo.full_name and r.head_sha == sha]
        q = req.query
        if q.get("check_name"):
            runs = [r for r in runs if r.name == q["check_name"]]
        if q.get("status"):
            runs = [r for r in runs if r.status == q["status"]]
        if q.get("filter", "latest") == "latest":
            latest: dict[str, CheckRun] = {}
            for r in sorted(runs, key=lambda r: r.id):
                latest[r.name] = r
            runs = list(latest.values())
        runs.sort(key=lambda r: r.id, reverse=True)
        chunk, headers = self._page(req, runs)
        return Answer(
            200, {"total_count": len(runs), "check_runs": [self.views.check_run(r) for r in chunk]}, headers
        )

    # pulls
    def _pr(self, repo: Repo, number: str) -> PullRequest:
        pr = self.world.pulls[repo.full_name].get(int(number)) if number.isdigit() else None
        if pr is None:
            raise _not_found()
        return pr

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
        head_repo = repo if not head_owner or head_owner == repo.owner else None
        if head_repo is None:
            raise ApiError(
                422, "Validation Failed", [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
            )
        head_sha = gitops.resolve(repo.path, f"refs/heads/{head_branch}")
        base_sha = gitops.resolve(repo.path, f"refs/heads/{b['base']}")
        if head_sha is None or base_sha is None:
            field_name = "head" if head_sha is None else "base"
            raise ApiError(
                422,
                "Validation Failed",
                [{"resource": "PullRequest", "field": field_name, "code": "invalid"}],
            )
        for other in self.world.pulls[repo.full_name].values():
            if other.state == "open" and other.head_ref == head_branch and other.base_ref == b["base"]:
                raise ApiError(
                    422,
                    "Validation Failed",
                    [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {repo.owner}:{head_branch}.",
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
            repo.full_name,
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

    # issues
    def _review_hook(self, pr: PullRequest, review: Review) -> dict[str, Any]:
        """A review as webhooks carry it: GitHub lower-cases ``state`` there."""
        data = self.views.review(pr, review)
        data["state"] = data["state"].lower()
        return data

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
            raise _not_found()
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
        _check_comment_length(b["body"])
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
        _check_comment_length(b["body"])
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


def _check_comment_length(body: str) -> None:
    """Refuse a comment body over GitHub's 65,536-character limit with its 422."""
    if len(body) > 65536:
        error = {
            "resource": "IssueComment",
            "code": "custom",
            "field": "body",
            "message": "Body is too long (maximum is 65536 characters)",
        }
        raise ApiError(422, "Validation Failed", [error])
