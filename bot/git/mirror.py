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
import tarfile
import tempfile
import threading
from collections.abc import Iterator, Sequence
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
        return self.url_template.format(full_name=full_name)

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


def _safe_member(name: str) -> str | None:
    norm = posixpath.normpath(name)
    if norm.startswith(("/", "../")) or norm in ("..", ".") or "\0" in norm:
        return None
    return norm


@contextlib.contextmanager
def materialise(git_dir: Path, sha: str, dropped: list[str] | None = None) -> Iterator[Path]:
    """Yield a temporary directory holding the tree at ``sha``; delete it afterwards.

    Extraction is safe: entries with absolute or ``..`` paths are skipped, and a
    symlink whose target leaves the tree (absolute, or through ``..``) is dropped and
    its path appended to ``dropped`` (and logged), never followed. Submodules are absent.
    """
    tmp = Path(tempfile.mkdtemp(prefix="gitops-bot-tree-"))
    root = tmp / "tree"
    root.mkdir()
    try:
        proc = subprocess.Popen(
            ["git", f"--git-dir={git_dir}", "archive", "--format=tar", sha],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=GIT_ENV,
        )
        assert proc.stdout is not None
        links: list[tuple[str, str]] = []
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    name = _safe_member(member.name)
                    if name is None:
                        _drop(dropped, member.name)
                        continue
                    dest = root / name
                    if member.isdir():
                        dest.mkdir(parents=True, exist_ok=True)
                    elif member.isfile():
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        src = tar.extractfile(member)
                        if src is None:
                            continue
                        with open(dest, "wb") as out:
                            shutil.copyfileobj(src, out)
                        dest.chmod(0o755 if member.mode & 0o111 else 0o644)
                    elif member.issym():
                        links.append((name, member.linkname))
                    else:
                        _drop(dropped, name)
        finally:
            stderr = proc.stderr.read() if proc.stderr else b""
            proc.wait()
        if proc.returncode != 0:
            raise GitError(f"git archive failed: {stderr.decode(errors='replace').strip()}")
        for name, target in links:
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if posixpath.isabs(target) or resolved == ".." or resolved.startswith("../"):
                _drop(dropped, name)
                continue
            dest = root / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, dest)
        real_root = root.resolve()
        for name, _target in links:
            dest = root / name
            if dest.is_symlink() and not dest.resolve().is_relative_to(real_root):
                dest.unlink()  # escapes through a chain of links
                _drop(dropped, name)
        yield root
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _drop(dropped: list[str] | None, name: str) -> None:
    log.warning("materialise: dropped unsafe tree entry %s", name)
    if dropped is not None:
        dropped.append(name)
