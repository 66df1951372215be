"""Helpers for render tests: real git repositories in temporary directories."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.gitrepo import GitRepo, tree_repo, write_files

FLEET = ROOT / "examples" / "fleet"
KEY = b"test-installation-key"
write = write_files


def git(repo: Path, *args: str) -> str:
    return GitRepo.open(repo).git(*args)


def commit(repo: Path, files: Mapping[str, str | None], message: str = "change") -> str:
    """Write (None deletes) ``files`` in the work tree of ``repo`` and commit everything."""
    return GitRepo.open(repo).commit(files, message)


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """Return a factory: ``make_repo(files)`` or ``make_repo(fleet=True)`` gives a repo on ``main``."""

    def factory(files: Mapping[str, str] | None = None, *, fleet: bool = False, name: str = "repo") -> Path:
        return tree_repo(tmp_path / name, files, source=FLEET if fleet else None).path

    return factory
