"""RepoAccess over a mirror cache: one fetch per delivery and refs, tokens from the App."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import gidgethub.routing
import pytest

from bot.cli.replay import DryRunRepoAccess
from bot.service.repos import MirrorRepoAccess, mirror_repos, mirror_template
from bot.service.settings import Settings, SettingsError
from bot.service.worker import Worker


class RecordingCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[str, str, str | None, list[str], bool]] = []

    def sync(self, full_name: str, token: str | None, refs: Sequence[str] = ()) -> Path:
        self.calls.append(("sync", full_name, token, list(refs), False))
        return self.root / f"{full_name}.git"

    def push(
        self, full_name: str, token: str | None, refspecs: Sequence[str], *, force: bool = False
    ) -> None:
        self.calls.append(("push", full_name, token, list(refspecs), force))


class Tokens:
    def __init__(self) -> None:
        self.asked: list[int] = []

    async def installation_token(self, installation_id: int) -> str:
        self.asked.append(installation_id)
        return f"token-{installation_id}"


async def test_one_fetch_per_delivery_unless_new_refs_are_asked(tmp_path: Path) -> None:
    cache, tokens = RecordingCache(tmp_path), Tokens()
    repos = MirrorRepoAccess(cache, tokens, 7)  # type: ignore[arg-type]
    first = await repos.git_dir("o/r", refs=["refs/pull/1/head"])
    assert await repos.git_dir("o/r") == first
    assert await repos.git_dir("o/r", refs=["refs/pull/1/head"]) == first
    await repos.git_dir("o/r", refs=["refs/pull/2/head"])
    await repos.git_dir("o/other")
    assert [(c[0], c[1], c[2], c[3]) for c in cache.calls] == [
        ("sync", "o/r", "token-7", ["refs/pull/1/head"]),
        ("sync", "o/r", "token-7", ["refs/pull/2/head"]),
        ("sync", "o/other", "token-7", []),
    ]
    await repos.push("o/r", ["abc:refs/heads/promote/x"], force=True)
    assert cache.calls[-1] == ("push", "o/r", "token-7", ["abc:refs/heads/promote/x"], True)
    await repos.git_dir("o/r")  # fetched again after a push
    assert cache.calls[-1][0] == "sync"


async def test_each_delivery_gets_its_installation(tmp_path: Path) -> None:
    cache, tokens = RecordingCache(tmp_path), Tokens()
    settings = Settings(webhook_secret=b"x")
    factory = mirror_repos(settings, tokens, cache=cache)  # type: ignore[arg-type]
    assert factory is not None
    worker = Worker(None, None, gidgethub.routing.Router(), repos=factory)
    await worker.repos_for(1).git_dir("o/r")
    await worker.repos_for(2).git_dir("o/r")
    assert [c[2] for c in cache.calls] == ["token-1", "token-2"]


def test_mirror_template() -> None:
    assert mirror_template("https://github.com/{owner}/{repo}.git") == "https://github.com/{full_name}.git"
    with pytest.raises(SettingsError, match=r"^GIT_URL="):
        mirror_template("https://x/{repo}/{owner}.git")


async def test_dry_run_prints_pushes_and_explains_missing_git() -> None:
    printed: list[str] = []
    repos = DryRunRepoAccess(None, out=printed.append)
    await repos.push("o/r", ["abc:refs/heads/env/prod"], force=False)
    assert printed == ["git push o/r abc:refs/heads/env/prod"]
    with pytest.raises(RuntimeError, match="dry run without App credentials cannot fetch o/r"):
        await repos.git_dir("o/r")


async def test_app_repo_access_finds_each_installation_once(tmp_path: Path) -> None:
    from bot.service.repos import AppRepoAccess
    from tests.support.github import FakeGitHub

    app_api = FakeGitHub(
        responses={
            ("GET", "/repos/o/a/installation"): {"id": 11},
            ("GET", "/repos/o/b/installation"): {"id": 22},
        }
    )

    class Clients(Tokens):
        async def app_api(self) -> FakeGitHub:
            return app_api

    cache, clients = RecordingCache(tmp_path), Clients()
    repos = AppRepoAccess(cache, clients)  # type: ignore[arg-type]
    await repos.git_dir("o/a")
    await repos.git_dir("o/a", refs=["refs/pull/3/head"])
    await repos.push("o/b", ["x:refs/heads/y"])
    assert [c[2] for c in cache.calls] == ["token-11", "token-11", "token-22"]
    assert [c.path for c in app_api.calls] == ["/repos/o/a/installation", "/repos/o/b/installation"]
