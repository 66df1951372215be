"""Local bare mirrors of repositories, fetched incrementally, and safe checkouts of a revision.

The installation token never appears in a URL, an argv or a log line: git receives it as
an ``http.extraHeader`` through ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_0``/``GIT_CONFIG_VALUE_0``
in the environment, and every error message is scrubbed of it before it is raised.
All functions are synchronous; run them in a thread from async code.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import logging
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.git.files import GIT_ENV, GitError

log = logging.getLogger(__name__)

_FULL_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
DEFAULT_REFSPECS = ("+refs/heads/*:refs/heads/*",)
GIT_TIMEOUT = 600


def _auth_env(token: str | None) -> dict[str, str]:
    env = dict(GIT_ENV)
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update(
            {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            }
        )
    return env


def _scrub(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
        text = text.replace(base64.b64encode(f"x-access-token:{token}".encode()).decode(), "***")
    return re.sub(r"(https?://)[^/@\s]+@", r"\1***@", text)


def _run(git_dir: Path | None, args: Sequence[str], token: str | None, cwd: Path | None = None) -> str:
    argv = ["git", *([f"--git-dir={git_dir}"] if git_dir else []), *args]
    try:
        proc = subprocess.run(
            argv, capture_output=True, env=_auth_env(token), cwd=cwd, timeout=GIT_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT} s") from exc
    if proc.returncode != 0:
        raise GitError(f"git {args[0]} failed: {_scrub(proc.stderr.decode(errors='replace').strip(), token)}")
    return proc.stdout.decode(errors="replace")


class MirrorCache:
    """Bare mirrors under ``root``, one per repository, with a lock per repository.

    ``url_template`` is formatted with ``full_name`` (``https://github.com/{full_name}.git``,
    or the simulator's ``http://127.0.0.1:PORT/{full_name}.git``).
    """

    def __init__(self, root: Path, url_template: str) -> None:
        self.root = Path(root)
        self.url_template = url_template
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, full_name: str) -> Path:
        """Return the mirror directory of ``owner/name`` (validated: no path tricks)."""
        if not _FULL_NAME.match(full_name) or ".." in full_name:
            raise ValueError(f"not a repository name: {full_name!r}")
        owner, name = full_name.split("/")
        return self.root / owner / f"{name}.git"

    def url_for(self, full_name: str) -> str:
        owner, _, repo = full_name.partition("/")
        return self.url_template.format(full_name=full_name, owner=owner, repo=repo)

    @contextlib.contextmanager
    def _locked(self, full_name: str) -> Iterator[Path]:
        path = self.path_for(full_name)
        with self._locks_guard:
            lock = self._locks.setdefault(full_name, threading.Lock())
        with lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path.parent / f".{path.name}.lock", "w") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield path
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def sync(self, full_name: str, token: str | None, refs: Sequence[str] = ()) -> Path:
        """Clone the mirror once, then fetch branches and ``refs`` (e.g. ``refs/pull/7/head``).

        Returns the bare repository path. Concurrent calls for one repository wait for
        each other; a fetch that fails raises :class:`GitError` (token scrubbed).
        """
        with self._locked(full_name) as path:
            if not (path / "HEAD").exists():
                shutil.rmtree(path, ignore_errors=True)  # a half-made mirror from a crash: start again
                tmp = path.with_name(path.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                _run(None, ["init", "--bare", "--quiet", str(tmp)], None)
                _run(tmp, ["config", "remote.origin.url", self.url_for(full_name)], None)
                _run(tmp, ["config", "gc.auto", "0"], None)
                tmp.rename(path)
            refspecs = list(DEFAULT_REFSPECS)
            for ref in refs:
                if not ref.startswith("refs/") or ".." in ref or any(c in ref for c in " ~^:?*[\\"):
                    raise ValueError(f"not a ref: {ref!r}")
                refspecs.append(f"+{ref}:{ref}")
            _run(path, ["fetch", "--prune", "--no-tags", "--quiet", "origin", *refspecs], token)
            return path

    def push(
        self, full_name: str, token: str | None, refspecs: Sequence[str], *, force: bool = False
    ) -> None:
        """Push ``refspecs`` from the mirror to the remote (``--force`` when asked)."""
        with self._locked(full_name) as path:
            args = ["push", "--quiet", "--porcelain", *(["--force"] if force else []), "origin", *refspecs]
            _run(path, args, token)

    @staticmethod
    def materialise(
        git_dir: Path, sha: str, dropped: list[str] | None = None
    ) -> contextlib.AbstractContextManager[Path]:
        """Same as the module-level :func:`materialise`."""
        return materialise(git_dir, sha, dropped)


def scratch_dir() -> str | None:
    """Where temporary trees go: ``$GITOPS_BOT_SCRATCH``, else ``/dev/shm`` (tmpfs) when usable."""
    configured = os.environ.get("GITOPS_BOT_SCRATCH")
    if configured:
        return configured
    shm = Path("/dev/shm")  # noqa: S108 - a private mkdtemp directory is created inside it
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return str(shm)
    return None


@contextlib.contextmanager
def materialise(
    git_dir: Path, sha: str, dropped: list[str] | None = None, *, exclude: Sequence[str] = ()
) -> Iterator[Path]:
    """Yield a temporary directory holding the tree at ``sha``; delete it afterwards.

    The tree is written by git itself (``read-tree`` + ``checkout-index`` with a private
    index), so ``.gitattributes`` cannot hide files the way ``export-ignore`` would with
    ``git archive``, and git refuses paths with ``..`` or ``.git``. Every symlink whose
    target leaves the tree (absolute, through ``..``, or through a chain of links) is
    removed and its path appended to ``dropped`` (and logged), never followed.
    Submodules are absent. On a tmpfs when one is available (see :func:`scratch_dir`).
    Files under the folders in ``exclude`` (repo-relative) are not written.
    """
    tmp = Path(tempfile.mkdtemp(prefix="gitops-bot-tree-", dir=scratch_dir()))
    root = tmp / "tree"
    root.mkdir()
    env = {**GIT_ENV, "GIT_INDEX_FILE": str(tmp / "index")}
    base = [
        "git",
        f"--git-dir={git_dir}",
        f"--work-tree={root}",
        "-c",
        "core.symlinks=true",
        "-c",
        "core.autocrlf=false",
        "-c",
        "filter.lfs.smudge=",
        "-c",
        "filter.lfs.process=",
        "-c",
        "filter.lfs.required=false",
        "-c",
        "core.fsmonitor=false",
        "-c",
        "core.hooksPath=/dev/null",
    ]
    try:
        checkout = ["checkout-index", "--force", "--quiet", *(["-z", "--stdin"] if exclude else ["--all"])]
        wanted: bytes | None = None
        for args in (["read-tree", f"{sha}^{{tree}}"], checkout):
            if exclude and args is checkout:
                wanted = _paths_outside(base, env, root, exclude)
            proc = subprocess.run(
                [*base, *args], capture_output=True, env=env, cwd=root, check=False, input=wanted
            )
            if proc.returncode != 0:
                raise GitError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
        real_root = root.resolve()
        for path in sorted(_links(str(root))):
            target = os.readlink(path)
            rel = path.relative_to(root).as_posix()
            escapes = posixpath.isabs(target) or not path.resolve().is_relative_to(real_root)
            if escapes:
                path.unlink()
                _drop(dropped, rel)
        yield root
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _paths_outside(base: list[str], env: dict[str, str], root: Path, exclude: Sequence[str]) -> bytes:
    """The index's paths (NUL-separated) that lie under none of the folders ``exclude``."""
    proc = subprocess.run([*base, "ls-files", "-z"], capture_output=True, env=env, cwd=root, check=False)
    if proc.returncode != 0:
        raise GitError(f"git ls-files failed: {proc.stderr.decode(errors='replace').strip()}")
    prefixes = tuple(f"{e.strip('/')}/".encode() for e in exclude)
    return b"".join(p + b"\0" for p in proc.stdout.split(b"\0") if p and not p.startswith(prefixes))


@contextlib.contextmanager
def materialise_many(
    git_dir: Path, revisions: Sequence[tuple[str, list[str] | None]]
) -> Iterator[list[Path]]:
    """Yield one temporary tree per ``(sha, dropped)``, as :func:`materialise`, written at the same time.

    Writing a tree is mostly git and the file system, so two revisions take about the time
    of one on two CPUs. If one cannot be written, the others are deleted and its error raised.
    """
    managers = [materialise(git_dir, sha, dropped) for sha, dropped in revisions]
    with ThreadPoolExecutor(max_workers=max(1, len(managers))) as pool:
        entered = [pool.submit(m.__enter__) for m in managers]
        futures.wait(entered)
        try:
            yield [f.result() for f in entered]
        finally:
            done = [m for m, f in zip(managers, entered, strict=True) if f.exception() is None]
            for exit_ in [pool.submit(m.__exit__, None, None, None) for m in done]:
                exit_.result()


def _links(folder: str) -> Iterator[Path]:
    """Yield every symbolic link under ``folder`` (one scandir per folder; links are not followed)."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return
    for entry in entries:
        if entry.is_symlink():
            yield Path(entry.path)
        elif entry.is_dir(follow_symlinks=False):
            yield from _links(entry.path)


def _drop(dropped: list[str] | None, name: str) -> None:
    log.warning("materialise: dropped unsafe tree entry %s", name)
    if dropped is not None:
        dropped.append(name)
