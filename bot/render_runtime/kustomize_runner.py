"""Run kustomize on a checkout: the real ``kustomize build`` (or ``kubectl kustomize``), sandboxed.

The pure parts (reading kustomizations, the closure of files a root reads, cleaning kustomize's
error text) are in :mod:`bot.domain.render.kustomize`; this module runs the process: the load
restrictor on, no plugins, no network settings, an empty HOME, memory and CPU bounded by
``prlimit`` when present.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from functools import cache
from pathlib import Path

from bot.domain.render.kustomize import (
    KUSTOMIZE_TIMEOUT,
    KustomizeError,
    KustomizeNotFound,
    clean_stderr,
)


@cache
def kustomize_command() -> tuple[str, ...]:
    """Return the argv prefix of the kustomize to run (``kustomize build`` or ``kubectl kustomize``)."""
    if shutil.which("kustomize"):
        return ("kustomize", "build")
    if shutil.which("kubectl"):
        return ("kubectl", "kustomize")
    raise KustomizeNotFound("neither `kustomize` nor `kubectl` is on PATH")


_VERSION_LOCK = threading.Lock()


def kustomize_version() -> str:
    """Return the kustomize version string (part of every render-cache key); asked once per process."""
    with _VERSION_LOCK:  # threads rendering at once wait for one answer instead of asking each
        return _kustomize_version()


def prefetch_kustomize_version() -> None:
    """Start asking kustomize its version in the background, unless it is known already.

    Rendering needs it for its cache keys; asking while targets are discovered takes it off
    the critical path (it runs a process).
    """
    if _kustomize_version.cache_info().currsize == 0:
        threading.Thread(target=kustomize_version, name="kustomize-version", daemon=True).start()


@cache
def _kustomize_version() -> str:
    cmd = kustomize_command()
    args = ["kustomize", "version"] if cmd[0] == "kustomize" else ["kubectl", "version", "--client"]
    try:
        proc = subprocess.run(args, capture_output=True, timeout=30, env=_safe_env(Path("/nonexistent")))
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return proc.stdout.decode(errors="replace").strip()


KUSTOMIZE_MAX_MEMORY = 2 * 1024**3


@cache
def _limits() -> tuple[str, ...]:
    """Return a ``prlimit`` prefix bounding kustomize's memory and CPU time, when prlimit exists.

    A pull request can make kustomize work hard (huge generators, deep overlays); the limit
    turns that into a finding instead of a starved worker.
    """
    prlimit = shutil.which("prlimit")
    if not prlimit:
        return ()
    return (prlimit, f"--as={KUSTOMIZE_MAX_MEMORY}", f"--cpu={KUSTOMIZE_TIMEOUT}")


def _safe_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C",
        "KUBECONFIG": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        # No proxy variables at all, and an unroutable one for tools that ignore their absence.
        "NO_PROXY": "*",
        "no_proxy": "*",
        "XDG_CONFIG_HOME": str(home),
    }


def run_kustomize(tree: Path, rel_dir: str) -> str:
    """Build ``rel_dir`` of ``tree`` with kustomize and return the YAML stream it prints.

    Runs with the working directory inside the tree, the load restrictor on
    (``LoadRestrictionsRootOnly``), no plugins, no Helm, no network settings and an
    empty HOME. Raises :class:`KustomizeError` with kustomize's message on failure.
    """
    argv = [*_limits(), *kustomize_command(), "--load-restrictor=LoadRestrictionsRootOnly", rel_dir or "."]
    with tempfile.TemporaryDirectory(prefix="gitops-bot-home-") as home:
        try:
            proc = subprocess.run(
                argv,
                cwd=tree,
                capture_output=True,
                env=_safe_env(Path(home)),
                timeout=KUSTOMIZE_TIMEOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise KustomizeError(f"kustomize took longer than {KUSTOMIZE_TIMEOUT} s") from exc
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", errors="replace").strip()
        message = message.replace(str(tree), "<repo>")
        raise KustomizeError(clean_stderr(message) or "kustomize failed")
    return proc.stdout.decode("utf-8", errors="replace")


def forget_kustomize_version() -> None:
    """Forget the kustomize version asked before (tests that change PATH)."""
    with _VERSION_LOCK:
        _kustomize_version.cache_clear()
