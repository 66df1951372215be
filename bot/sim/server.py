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
import functools
import json
import logging
import secrets
import subprocess
from typing import Any
from urllib.parse import unquote

import jwt
from aiohttp import web

from bot.git.files import GIT_ENV, GitError
from bot.sim import gitops
from bot.sim.core import DOCS, Actor, Answer, ApiError, Handler, not_found
from bot.sim.faults import FaultRule, LoggedRequest
from bot.sim.merge_queue import MergeQueueRoutes
from bot.sim.oauth import OAuthRoutes
from bot.sim.rest_apps import AppRoutes
from bot.sim.rest_checks import CheckRoutes
from bot.sim.rest_git import GitDataRoutes
from bot.sim.rest_issues import IssueRoutes
from bot.sim.rest_pulls import PullRoutes
from bot.sim.rest_repos import RepoRoutes
from bot.sim.schemas import Operation
from bot.sim.state import (
    Repo,
    rank,
)

log = logging.getLogger("bot.sim")
JWT_ROUTES = {
    "apps/get-authenticated",
    "apps/list-webhook-deliveries",
    "apps/redeliver-webhook-delivery",
    "apps/create-installation-access-token",
    "apps/get-repo-installation",
}


class Simulator(
    OAuthRoutes, MergeQueueRoutes, AppRoutes, RepoRoutes, GitDataRoutes, CheckRoutes, PullRoutes, IssueRoutes
):
    """A local GitHub: start it, create people and repositories, point the bot at :attr:`base_url`."""

    @functools.cached_property
    def _handlers(self) -> dict[str, Handler]:
        """operationId -> the ``op_<group>__<name>`` method that serves it."""
        return self._handler_table()

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

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sim/"):
            return await self._admin(request)
        if ".git/" in path or path.endswith(".git"):
            return await self._git(request)
        if path.startswith("/login/oauth/") or path == "/user":
            return await self._oauth(request)
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
                raise not_found()
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

    def _handler_table(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {}
        for name in dir(self):
            if name.startswith("op_"):
                table[name[3:].replace("__", "/").replace("_", "-")] = getattr(self, name)
        return table
