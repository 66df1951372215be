"""One sandboxed worker process speaking JSON lines: what the Helm and Go-template runners share.

A worker is a separate Python process started with ``python -I`` (PYTHONPATH and user site
ignored) and only the environment it is given, in an empty network namespace
(``unshare -rn``) when the kernel allows it (probed once per process), with an address-space
and CPU limit (``prlimit``). One request is one JSON line on stdin, its answer one JSON line on
stdout; an answer that does not come within the timeout, ends the stream or grows past
``max_answer`` bytes raises a :class:`WorkerFailed` saying which, and the runner words it.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar


class Closable(Protocol):
    def close(self) -> None: ...


R = TypeVar("R", bound=Closable)


def process_wide(make: Callable[[], R]) -> Callable[[], R]:
    """A function returning one ``make()`` per process, made on first use and closed at exit."""
    lock = threading.Lock()
    made: list[R] = []

    def get() -> R:
        with lock:
            if not made:
                made.append(make())
                atexit.register(made[0].close)
            return made[0]

    return get


class WorkerFailed(Exception):
    """The worker gave no answer: ``why`` is "unwritable" (it took no request), "stopped" (it
    ended before answering), "timeout" or "too_large"; ``detail`` is how the process ended."""

    def __init__(
        self, why: Literal["unwritable", "stopped", "timeout", "too_large"], detail: str = ""
    ) -> None:
        super().__init__(f"{why}: {detail}" if detail else why)
        self.why = why
        self.detail = detail


@cache
def network_isolation() -> tuple[str, ...]:
    """Return the ``unshare`` prefix that gives a worker an empty network namespace, when allowed."""
    unshare = shutil.which("unshare")
    if not unshare:
        return ()
    try:
        ok = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return (unshare, "-rn") if ok.returncode == 0 else ()


@dataclass(frozen=True)
class WorkerSpec:
    """What one kind of worker runs and within which limits (``{home}`` in ``env`` is its home)."""

    script: Path
    prefix: str
    max_memory: int
    cpu_seconds: int
    max_answer: int
    env: Mapping[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        """The command line: limits, then the network namespace, then isolated Python."""
        prlimit = shutil.which("prlimit")
        limits = (prlimit, f"--as={self.max_memory}", f"--cpu={self.cpu_seconds}") if prlimit else ()
        return [*limits, *network_isolation(), sys.executable, "-I", str(self.script)]


class SandboxedWorker:
    """One worker process; :meth:`ask` sends a request and waits for its answer."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.home = tempfile.mkdtemp(prefix=spec.prefix)
        self.max_answer = spec.max_answer
        base = {"PATH": "/usr/bin:/bin", "HOME": self.home, "LC_ALL": "C", "NO_PROXY": "*", "no_proxy": "*"}
        self.proc = subprocess.Popen(
            spec.command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**base, **{k: v.replace("{home}", self.home) for k, v in spec.env.items()}},
            cwd=self.home,
        )
        self.jobs = 0
        self._buffer = b""

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.jobs += 1
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise WorkerFailed("unwritable", self._why()) from exc
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerFailed("timeout")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise WorkerFailed("stopped", self._why())
            self._buffer += chunk
            if len(self._buffer) > self.max_answer:
                raise WorkerFailed("too_large")
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _why(self) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "no answer"
        if code < 0:
            return f"killed by signal {-code}: a memory or CPU limit, or a crash"
        return f"exit status {code}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        shutil.rmtree(self.home, ignore_errors=True)
