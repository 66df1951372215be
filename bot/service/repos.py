"""Git access for handlers: the RepoAccess protocol over a mirror cache and an installation token.

``bot.git.mirror.MirrorCache`` (synchronous, token passed per call, never in a URL or argv)
keeps one bare mirror per repository. Here each delivery gets a :class:`MirrorRepoAccess`
bound to its installation: it fetches through a thread, asks the GitHub App for the
installation token only when git needs one, and fetches a repository at most once per
delivery for the same refs, however many handlers ask.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

from bot.domain.config import CONFIG_PATH, parse_config
from bot.git.files import read_file_at
from bot.git.mirror import MirrorCache
from bot.github.types import GitHubClients
from bot.service.context import RepoAccess
from bot.service.settings import Settings, SettingsError


class MirrorLike(Protocol):
    """What :class:`MirrorRepoAccess` needs from a mirror cache (``bot.git.mirror.MirrorCache``)."""

    def sync(self, full_name: str, token: str | None, refs: Sequence[str] = ()) -> Path: ...

    def push(
        self, full_name: str, token: str | None, refspecs: Sequence[str], *, force: bool = False
    ) -> None: ...


class MirrorRepoAccess:
    """A RepoAccess for one delivery: mirrors fetched with the installation's token."""

    def __init__(self, cache: MirrorLike, clients: GitHubClients | None, installation_id: int | None) -> None:
        self.cache = cache
        self.clients = clients
        self.installation_id = installation_id
        self._fetched: dict[str, tuple[Path, frozenset[str]]] = {}
        self._lock = asyncio.Lock()

    async def _token(self) -> str | None:
        if self.clients is None or self.installation_id is None:
            return None
        return await self.clients.installation_token(self.installation_id)

    async def git_dir(self, full_name: str, *, refs: Sequence[str] = ()) -> Path:
        """Return the mirror of ``full_name`` with ``refs``, fetching unless this delivery already did."""
        wanted = frozenset(refs)
        async with self._lock:
            seen = self._fetched.get(full_name)
            if seen is not None and wanted <= seen[1]:
                return seen[0]
            token = await self._token()
            path = await asyncio.to_thread(self.cache.sync, full_name, token, sorted(wanted))
            self._fetched[full_name] = (path, wanted | (seen[1] if seen else frozenset()))
            return path

    async def push(self, full_name: str, refspecs: Sequence[str], *, force: bool = False) -> None:
        """Push ``refspecs`` from the mirror with the installation's token."""
        token = await self._token()
        await asyncio.to_thread(lambda: self.cache.push(full_name, token, list(refspecs), force=force))
        async with self._lock:
            self._fetched.pop(full_name, None)  # the remote moved: fetch again next time


class AppRepoAccess:
    """A RepoAccess outside any delivery (the reconciler): finds each repository's installation.

    The installation of ``owner/repo`` is asked once (``GET /repos/{owner}/{repo}/installation``
    as the App) and remembered; git then uses that installation's token.
    """

    def __init__(self, cache: MirrorLike, clients: GitHubClients) -> None:
        self.cache = cache
        self.clients = clients
        self._installations: dict[str, int] = {}

    async def _for(self, full_name: str) -> MirrorRepoAccess:
        if full_name not in self._installations:
            app = await self.clients.app_api()
            answer = await app.getitem(f"/repos/{full_name}/installation")
            self._installations[full_name] = int(answer["id"])
        return MirrorRepoAccess(self.cache, self.clients, self._installations[full_name])

    async def git_dir(self, full_name: str, *, refs: Sequence[str] = ()) -> Path:
        """Fetch the mirror of ``full_name`` with its installation's token."""
        return await (await self._for(full_name)).git_dir(full_name, refs=refs)

    async def push(self, full_name: str, refspecs: Sequence[str], *, force: bool = False) -> None:
        """Push from the mirror of ``full_name`` with its installation's token."""
        await (await self._for(full_name)).push(full_name, refspecs, force=force)


RepoFactory = Callable[[int | None], RepoAccess]
RepoSource = RepoAccess | RepoFactory | None
"""What a process is given for git: one RepoAccess, a factory per installation id, or nothing."""


class UnavailableRepoAccess:
    """The RepoAccess used until a git mirror is configured: every use fails with a clear error."""

    available = False

    async def git_dir(self, full_name: str, *, refs: Any = ()) -> Path:
        """Refuse: no git mirror is configured in this process."""
        raise RuntimeError(
            f"no git mirror is configured, cannot fetch {full_name}: pass repos= to create_app"
        )

    async def push(self, full_name: str, refspecs: Any, *, force: bool = False) -> None:
        """Refuse: no git mirror is configured in this process."""
        raise RuntimeError(
            f"no git mirror is configured, cannot push to {full_name}: pass repos= to create_app"
        )


def repo_access(source: RepoSource, installation_id: int | None) -> RepoAccess:
    """The git access of one delivery of ``installation_id``, from what the process was given."""
    if source is None:
        return UnavailableRepoAccess()
    if hasattr(source, "git_dir"):
        return cast(RepoAccess, source)
    return source(installation_id)


def outside_delivery_access(
    settings: Settings, clients: GitHubClients | None, source: RepoSource
) -> RepoAccess:
    """The git access outside any delivery (the reconciler): each repository's own installation.

    A single RepoAccess given to the process is used as it is; otherwise the mirrors under
    ``GITOPS_BOT_DATA_DIR`` with the token of each repository's installation.
    """
    if source is not None and hasattr(source, "git_dir"):
        return cast(RepoAccess, source)
    cache = mirror_cache(settings)
    if cache is None or clients is None:
        return UnavailableRepoAccess()
    return AppRepoAccess(cache, clients)


def mirror_cache(settings: Settings) -> MirrorCache | None:
    """Return the MirrorCache under ``GITOPS_BOT_DATA_DIR/mirrors``, or None when off.

    ``GITOPS_BOT_GIT_MIRROR=off`` runs the service without git: pull requests then get only the
    ``gitops-bot`` status check and comment (used for plumbing tests without a git server).
    """
    if not settings.git_mirror:
        return None
    return MirrorCache(settings.data_dir / "mirrors", mirror_template(settings.git_url))


def mirror_template(git_url: str) -> str:
    """Turn GIT_URL (``.../{owner}/{repo}.git``) into the cache's ``{full_name}`` template."""
    if "{owner}/{repo}" not in git_url:
        raise SettingsError(f"GIT_URL={git_url!r} must contain '{{owner}}/{{repo}}' for the git mirror")
    return git_url.replace("{owner}/{repo}", "{full_name}")


def mirror_repos(
    settings: Settings, clients: GitHubClients | None, *, cache: Any = None
) -> RepoFactory | None:
    """Return a per-installation RepoAccess factory over mirrors in ``GITOPS_BOT_DATA_DIR/mirrors``.

    Returns None when the mirror module is not installed in this build (handlers then get a
    RepoAccess that explains it). ``cache`` replaces the MirrorCache (tests).
    """
    the_cache = cache if cache is not None else mirror_cache(settings)
    if the_cache is None:
        return None

    def factory(installation_id: int | None) -> RepoAccess:
        return MirrorRepoAccess(the_cache, clients, installation_id)

    return factory


async def load_config(
    access: RepoAccess, repo: str, revision: str, *, refs: Sequence[str] = ()
) -> dict[str, Any]:
    """The parsed ``.github/gitops-bot.yml`` of ``repo`` at ``revision``, and only there.

    ``revision`` is a ref (``refs/heads/main``: the default branch for promotion) or a commit
    sha (a PR's base commit for its checks); callers name the revision they trust, never a
    PR's head. The mirror is fetched with ``revision`` (when it is a ref) and ``refs``. A
    missing file is the defaults; an invalid one raises :class:`~bot.domain.config.ConfigError`.
    """
    wanted = [*refs, *([revision] if revision.startswith("refs/") else [])]
    git_dir = await access.git_dir(repo, refs=list(dict.fromkeys(wanted)))
    return await config_at(git_dir, revision)


async def config_at(git_dir: Path, revision: str) -> dict[str, Any]:
    """:func:`load_config` from a mirror already fetched (``revision`` as there)."""
    return parse_config(await asyncio.to_thread(read_file_at, git_dir, revision, CONFIG_PATH))
