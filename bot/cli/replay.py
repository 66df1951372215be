"""``gitops-bot replay``: run one delivery from a file through the live dispatch code path.

Without ``--dry-run`` the handlers act on GitHub as the App installation. With ``--dry-run``
every write (POST, PATCH, PUT, DELETE) is printed — method, path and JSON body — instead of
sent; GETs go to GitHub when App credentials are configured, otherwise they are answered
offline with empty lists (or 404 for single objects), so a replay works with no network.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import gidgethub
import gidgethub.abc
from gidgethub import sansio

from bot.cli._service import StartupError, configure_logging, fail, settings_or_error
from bot.queue.base import Delivery, Status
from bot.service.context import RepoAccess
from bot.service.repos import mirror_repos
from bot.service.webhook import installation_id, ordering_key

LIST_SEGMENTS = {
    "comments",
    "files",
    "commits",
    "reviews",
    "labels",
    "requested_reviewers",
    "pulls",
    "statuses",
    "events",
    "members",
    "teams",
    "collaborators",
    "branches",
    "deliveries",
    "annotations",
}
WRAPPED_LISTS = {"check-runs": "check_runs", "check-suites": "check_suites"}


def offline_answer(path: str) -> Any:
    """Return what an empty repository would answer to GET ``path``; raise 404 for single objects."""
    last = urlsplit(path).path.rstrip("/").rsplit("/", 1)[-1]
    if last in WRAPPED_LISTS:
        return {"total_count": 0, WRAPPED_LISTS[last]: []}
    if last == "status":
        return {"state": "pending", "statuses": [], "total_count": 0}
    if last in LIST_SEGMENTS:
        return []
    raise gidgethub.BadRequest(HTTPStatus.NOT_FOUND, "Not Found (dry-run offline: no GitHub to ask)")


class DryRunGitHub(gidgethub.abc.GitHubAPI):
    """A GitHub client that prints writes instead of making them.

    ``real`` (optional) answers GETs; without it GETs are answered by :func:`offline_answer`.
    Written objects get made-up ids counting from 1,000,000, so follow-up calls have an id.
    """

    def __init__(
        self,
        real: gidgethub.abc.GitHubAPI | None = None,
        *,
        out: Callable[[str], None] = print,
        base_url: str = sansio.DOMAIN,
    ) -> None:
        super().__init__("gitops-bot-dry-run", base_url=real.base_url if real is not None else base_url)
        self.real = real
        self.out = out
        self.writes: list[tuple[str, str, Any]] = []
        self._ids = itertools.count(1_000_000)

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        raise AssertionError("DryRunGitHub answers in _make_request")  # pragma: no cover

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _make_request(
        self,
        method: str,
        url: str,
        url_vars: Any,
        data: Any,
        accept: str,
        jwt: str | None = None,
        oauth_token: str | None = None,
        content_type: str = "application/json",
        extra_headers: dict[str, str] | None = None,
    ) -> tuple[Any, str | None, int]:
        filled = sansio.format_url(url, url_vars, base_url=self.base_url)
        path = filled[len(self.base_url) :] if filled.startswith(self.base_url) else filled
        if method == "GET":
            if self.real is not None:
                return await self.real._make_request(
                    method,
                    url,
                    url_vars,
                    data,
                    accept,
                    jwt=jwt,
                    oauth_token=oauth_token,
                    content_type=content_type,
                    extra_headers=extra_headers,
                )
            answer = offline_answer(path)
            self.out(f"GET {path}  -> offline: {json.dumps(answer)}")
            return answer, None, 200
        body = None if data == b"" else data
        self.writes.append((method, path, body))
        self.out(f"{method} {path}")
        if body is not None:
            self.out(json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False))
        if method == "DELETE":
            return None, None, 204
        fake_id = next(self._ids)
        answer = dict(body) if isinstance(body, dict) else {}
        answer.setdefault("id", fake_id)
        answer.setdefault("number", fake_id)
        answer.setdefault("html_url", f"https://github.invalid/dry-run{path}/{answer['id']}")
        return answer, None, 201 if method == "POST" else 200


class DryRunRepoAccess:
    """Git access for a dry run: fetches through ``inner`` (when there is one), prints pushes."""

    def __init__(self, inner: RepoAccess | None, *, out: Callable[[str], None] = print) -> None:
        self.inner = inner
        self.out = out
        self.pushes: list[tuple[str, list[str], bool]] = []
        self.available = inner is not None

    async def git_dir(self, full_name: str, *, refs: Sequence[str] = ()) -> Path:
        """Fetch through the real mirror, or explain that a dry run without credentials has no git."""
        if self.inner is None:
            raise RuntimeError(
                f"dry run without App credentials cannot fetch {full_name}: set GITHUB_APP_ID and the key"
            )
        return await self.inner.git_dir(full_name, refs=refs)

    async def push(self, full_name: str, refspecs: Sequence[str], *, force: bool = False) -> None:
        """Print the push instead of making it."""
        self.pushes.append((full_name, list(refspecs), force))
        self.out(f"git push {'--force ' if force else ''}{full_name} {' '.join(refspecs)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--event", required=True, help="the X-GitHub-Event name, e.g. pull_request")
    parser.add_argument("--payload", required=True, type=Path, help="a JSON file with the webhook body")
    parser.add_argument("--dry-run", action="store_true", help="print GitHub writes instead of making them")
    parser.add_argument("--delivery-id", help="delivery id to use (default: replay-<random>)")
    parser.add_argument("--installation", type=int, help="installation id (default: from the payload)")


def load_payload(path: Path) -> tuple[bytes, dict[str, Any]]:
    """Read and parse the payload file; raise StartupError with the reason."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StartupError(f"--payload {path} cannot be read: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StartupError(f"--payload {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise StartupError(f"--payload {path} is not a JSON object")
    return raw, data


async def replay(
    settings: Any,
    event: str,
    raw: bytes,
    data: dict[str, Any],
    *,
    dry_run: bool,
    delivery_id: str,
    installation: int | None,
    out: Callable[[str], None] = print,
    router: Any = None,
) -> int:
    """Run the delivery; print what happened; return 0 when every handler succeeded."""
    from bot.prchecks.publish import rendered_env_diff
    from bot.service.app import ClientsUnavailable, default_router, github_app_clients
    from bot.service.dispatch import handlers_for
    from bot.service.settings import SettingsError
    from bot.service.worker import PermanentDeliveryError, Worker, event_from_delivery

    inst = installation if installation is not None else installation_id(data)
    delivery = Delivery(
        id=delivery_id,
        event=event,
        action=data.get("action") if isinstance(data.get("action"), str) else None,
        payload=raw,
        installation_id=inst,
        ordering_key=ordering_key(event, data),
        status=Status.PROCESSING,
        attempts=1,
        received_at=datetime.now(UTC),
    )
    try:
        the_router = router if router is not None else default_router(settings)
    except SettingsError as exc:
        raise StartupError(str(exc)) from None
    names = [getattr(h, "__qualname__", "?") for h in handlers_for(the_router, event_from_delivery(delivery))]
    label = event + (f".{delivery.action}" if delivery.action else "")
    if not names:
        out(f"no handler runs for {label}; nothing to do")
        return 0
    out(f"replaying {label} as delivery {delivery_id}: {', '.join(names)}")
    async with aiohttp.ClientSession() as session:
        clients = None
        if settings.has_app_credentials:
            try:
                clients = github_app_clients(session, settings)
            except (SettingsError, ClientsUnavailable) as exc:
                raise StartupError(str(exc)) from None
        elif not dry_run:
            try:
                settings.require_app_credentials()
            except SettingsError as exc:
                raise StartupError(f"{exc} (or use --dry-run)") from None
        factory = mirror_repos(settings, clients) if clients is not None else None
        repos: RepoAccess | None = factory(inst) if factory is not None else None
        gh: gidgethub.abc.GitHubAPI | None = None
        if dry_run:
            real = None
            if clients is not None and inst is not None:
                real = await clients.installation_api(inst)
            gh = DryRunGitHub(real, out=out, base_url=settings.api_url)
            repos = DryRunRepoAccess(repos, out=out)
        worker = Worker(
            None,
            clients,
            the_router,
            repos=repos,
            settings=settings,
            bot_login=settings.bot_login,
            diff_renderer=rendered_env_diff,
        )
        try:
            failures = await worker.run_delivery(delivery, gh=gh)
        except PermanentDeliveryError as exc:
            out(f"cannot replay: {exc}")
            return 1
    if isinstance(gh, DryRunGitHub):
        out(f"dry run: {len(gh.writes)} write(s) printed, none made")
    for failure in failures:
        out(f"FAILED {failure}")
    return 1 if failures else 0


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_or_error(webhook_secret=False)
        configure_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
        raw, data = load_payload(args.payload)
        delivery_id = args.delivery_id or f"replay-{uuid.uuid4()}"
        return asyncio.run(
            replay(
                settings,
                args.event,
                raw,
                data,
                dry_run=args.dry_run,
                delivery_id=delivery_id,
                installation=args.installation,
            )
        )
    except StartupError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
