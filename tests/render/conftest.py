"""Helpers for render tests: real git repositories in temporary directories."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.conftest import ROOT

FLEET = ROOT / "examples" / "fleet"
KEY = b"test-installation-key"
GIT_ID = ["-c", "user.email=dev@example.com", "-c", "user.name=Dev", "-c", "commit.gpgsign=false"]


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *GIT_ID, *args], capture_output=True, check=True, text=True)
    return out.stdout.strip()


def write(root: Path, files: Mapping[str, str | None]) -> None:
    """Write (or, for None, delete) files under ``root``."""
    for rel, text in files.items():
        path = root / rel
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def commit(repo: Path, files: Mapping[str, str | None], message: str = "change") -> str:
    write(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """Return a factory: ``make_repo(files)`` or ``make_repo(fleet=True)`` gives a repo on ``main``."""

    def factory(files: Mapping[str, str] | None = None, *, fleet: bool = False, name: str = "repo") -> Path:
        repo = tmp_path / name
        if fleet:
            shutil.copytree(FLEET, repo)
        else:
            repo.mkdir()
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        commit(repo, files or {}, "initial")
        return repo

    return factory


@pytest.fixture(autouse=True, scope="session")
def _go_template_engine() -> Iterator[None]:
    """Generators expanded without a discovery get the sandboxed Go template engine too."""
    from bot.domain.render.gotemplate import set_default_engine
    from bot.render_runtime.gotemplate_runner import default_runner

    set_default_engine(default_runner())
    yield
    set_default_engine(None)
