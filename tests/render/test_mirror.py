"""Bare mirrors (clone once, fetch incrementally, push) and safe materialisation of a revision."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from pathlib import Path

import pytest

from bot.git import mirror as mirror_mod
from bot.git.files import GitError, rev_parse
from bot.git.mirror import MirrorCache, materialise
from tests.render.conftest import commit, git
from tests.support.gitrepo import tree_repo

TOKEN = "ghs_ThisIsAnInstallationToken1234"


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """A bare 'GitHub' repository at tmp/remote/acme/fleet.git with one commit on main."""
    work = tree_repo(tmp_path / "work", {"apps/a.yaml": "a: 1\n"}).path
    remote = tmp_path / "remote" / "acme" / "fleet.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    git(work, "remote", "add", "origin", str(remote))
    return work


def cache_for(tmp_path: Path) -> MirrorCache:
    return MirrorCache(tmp_path / "mirrors", f"file://{tmp_path}/remote/{{full_name}}.git")


def test_sync_clones_once_then_fetches_new_commits_and_pull_refs(tmp_path: Path, upstream: Path) -> None:
    cache = cache_for(tmp_path)
    path = cache.sync("acme/fleet", None)
    assert path == tmp_path / "mirrors/acme/fleet.git"
    first = rev_parse(path, "refs/heads/main")
    new = commit(upstream, {"apps/b.yaml": "b: 2\n"}, "two")
    git(upstream, "push", "-q", "origin", "main", f"{new}:refs/pull/7/head")
    assert cache.sync("acme/fleet", None, refs=["refs/pull/7/head"]) == path
    assert rev_parse(path, "refs/heads/main") == new != first
    assert rev_parse(path, "refs/pull/7/head") == new
    assert (path / "objects").is_dir() and not (path / "apps").exists()  # bare


def test_token_goes_by_environment_never_argv(
    tmp_path: Path, upstream: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[list[str], dict[str, str]]] = []
    real = subprocess.run

    def spy(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        calls.append((list(argv), dict(kwargs.get("env") or {})))  # type: ignore[arg-type]
        return real(argv, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(mirror_mod.subprocess, "run", spy)
    cache_for(tmp_path).sync("acme/fleet", TOKEN)
    fetches = [(argv, env) for argv, env in calls if "fetch" in argv]
    assert fetches
    for argv, _env in calls:
        assert not any(TOKEN in a for a in argv)
    _, env = fetches[0]
    expected = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"] == f"Authorization: Basic {expected}"
    config = (tmp_path / "mirrors/acme/fleet.git/config").read_text()
    assert TOKEN not in config and expected not in config


def test_failed_fetch_error_never_contains_the_token(tmp_path: Path) -> None:
    cache = MirrorCache(tmp_path / "m", "http://127.0.0.1:9/{full_name}.git")
    with pytest.raises(GitError) as err:
        cache.sync("acme/fleet", TOKEN)
    text = str(err.value)
    assert "fetch failed" in text
    assert TOKEN not in text and base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode() not in text


@pytest.mark.parametrize("name", ["../etc", "acme/../../x", "acme", "a/b/c", "acme/fle et"])
def test_bad_repository_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a repository name"):
        cache_for(tmp_path).path_for(name)


def test_bad_refs_are_refused(tmp_path: Path, upstream: Path) -> None:
    with pytest.raises(ValueError, match="not a ref"):
        cache_for(tmp_path).sync("acme/fleet", None, refs=["refs/heads/x:refs/heads/y"])


def test_concurrent_syncs_of_one_repository_wait_for_each_other(tmp_path: Path, upstream: Path) -> None:
    cache = cache_for(tmp_path)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            cache.sync("acme/fleet", None)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert rev_parse(tmp_path / "mirrors/acme/fleet.git", "main")


def test_push_creates_and_force_updates_a_branch(tmp_path: Path, upstream: Path) -> None:
    cache = cache_for(tmp_path)
    path = cache.sync("acme/fleet", None)
    main = rev_parse(path, "main")
    git(path, "update-ref", "refs/heads/gitops-bot/promote-staging", main)
    cache.push(
        "acme/fleet", None, ["refs/heads/gitops-bot/promote-staging:refs/heads/gitops-bot/promote-staging"]
    )
    remote = tmp_path / "remote/acme/fleet.git"
    assert rev_parse(remote, "gitops-bot/promote-staging") == main
    other = commit(upstream, {"x.yaml": "x: 1\n"}, "x")
    git(upstream, "push", "-q", "origin", "main")
    cache.sync("acme/fleet", None)
    git(path, "update-ref", "refs/heads/gitops-bot/promote-staging", other)
    cache.push("acme/fleet", None, ["refs/heads/main:refs/heads/gitops-bot/promote-staging"], force=True)
    assert rev_parse(remote, "gitops-bot/promote-staging") == other


def test_materialise_drops_links_out_of_the_tree(tmp_path: Path, upstream: Path) -> None:
    (tmp_path / "outside.txt").write_text("host secret\n")
    work = upstream
    (work / "apps").mkdir(exist_ok=True)
    os.symlink("a.yaml", work / "apps/inside.yaml")
    os.symlink("/etc/passwd", work / "apps/absolute")
    os.symlink("../../outside.txt", work / "apps/up")
    os.symlink("apps", work / "apps-link")
    os.symlink("apps-link/../../outside.txt", work / "chain")
    (work / ".gitattributes").write_text("apps/a.yaml export-ignore\n")
    sha = commit(work, {}, "links")
    dropped: list[str] = []
    with materialise(work / ".git", sha, dropped) as tree:
        assert (tree / "apps/a.yaml").read_text() == "a: 1\n"  # attributes cannot hide files
        assert (tree / "apps/inside.yaml").read_text() == "a: 1\n"
        assert (tree / "apps-link").is_symlink()
        for name in ("apps/absolute", "apps/up", "chain"):
            assert not (tree / name).exists() and not (tree / name).is_symlink()
        kept = tree
    assert sorted(dropped) == ["apps/absolute", "apps/up", "chain"]
    assert not kept.exists()


def test_materialise_unknown_revision_raises(tmp_path: Path, upstream: Path) -> None:
    with pytest.raises(GitError, match="read-tree"), materialise(upstream / ".git", "0" * 40):
        pass


def test_token_reaches_the_server_as_a_basic_auth_header(tmp_path: Path) -> None:
    import http.server

    seen: list[tuple[str, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(403)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cache = MirrorCache(tmp_path / "m", f"http://127.0.0.1:{server.server_address[1]}/{{full_name}}.git")
        with pytest.raises(GitError) as err:
            cache.sync("acme/fleet", TOKEN)
    finally:
        server.shutdown()
    expected = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert seen and seen[0][0].startswith("/acme/fleet.git/info/refs")
    assert seen[0][1] == expected
    assert TOKEN not in seen[0][0] and TOKEN not in str(err.value)


def test_a_half_made_mirror_is_recreated(tmp_path: Path, upstream: Path) -> None:
    broken = tmp_path / "mirrors/acme/fleet.git"
    broken.mkdir(parents=True)
    (broken / "junk").write_text("left by a crash")
    path = cache_for(tmp_path).sync("acme/fleet", None)
    assert rev_parse(path, "main") and not (path / "junk").exists()
