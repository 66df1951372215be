"""Run ApplicationSet Go templates in a sandboxed worker (:mod:`gotemplate_worker`).

Templates come from pull requests, and Go templates with sprig can loop and allocate
(``until 100000000``): they never run in the bot's process. The worker is a separate Python
process started with ``python -I`` and an environment holding only ``PATH`` and an empty
``HOME``, in an empty network namespace (``unshare -rn``) when the kernel allows it, with
2 GiB of address space and :data:`WORKER_CPU_SECONDS` of CPU (``prlimit``); one evaluation
gets :data:`TIMEOUT` seconds of wall time, past which the worker is killed. The worker is kept
between calls (starting one costs about 0.4 s) and replaced after :data:`JOBS_PER_WORKER`.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

from bot.domain.render.gotemplate import TemplateError, TemplateUnavailable

TIMEOUT = 30.0
WORKER_MAX_MEMORY = 2 * 1024**3
WORKER_CPU_SECONDS = 300
JOBS_PER_WORKER = 1000
MAX_ANSWER = 64 * 1024**2
WORKER_SCRIPT = Path(__file__).with_name("gotemplate_worker.py")


@cache
def _sandbox_prefix() -> tuple[str, ...]:
    prefix: list[str] = []
    prlimit = shutil.which("prlimit")
    if prlimit:
        prefix += [prlimit, f"--as={WORKER_MAX_MEMORY}", f"--cpu={WORKER_CPU_SECONDS}"]
    unshare = shutil.which("unshare")
    if unshare:
        try:
            ok = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            ok = None
        if ok is not None and ok.returncode == 0:
            prefix += [unshare, "-rn"]
    return tuple(prefix)


class _Worker:
    def __init__(self) -> None:
        self.home = tempfile.mkdtemp(prefix="gitops-bot-gotemplate-")
        env = {"PATH": "/usr/bin:/bin", "HOME": self.home, "LC_ALL": "C", "NO_PROXY": "*", "no_proxy": "*"}
        self.proc = subprocess.Popen(
            [*_sandbox_prefix(), sys.executable, "-I", str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=self.home,
        )
        self.jobs = 0
        self.buffer = b""

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.jobs += 1
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise TemplateUnavailable("the Go template worker stopped") from exc
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TemplateError(f"the templates took longer than {timeout:g} s to evaluate")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise TemplateError("the templates stopped the Go template worker (a memory or CPU limit)")
            self.buffer += chunk
            if len(self.buffer) > MAX_ANSWER:
                raise TemplateError("the templates produced more than 64 MiB")
        line, _, self.buffer = self.buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        shutil.rmtree(self.home, ignore_errors=True)


class GoTemplateRunner:
    """A :class:`~bot.domain.render.gotemplate.GoEngine` backed by one sandboxed worker (thread-safe)."""

    def __init__(self, *, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self._worker: _Worker | None = None
        self._lock = threading.Lock()
        self.calls = 0

    def render_chart(self, archive: bytes, values: dict[str, Any], *, strict: bool) -> dict[str, str]:
        request = {"archive": base64.b64encode(archive).decode(), "values": values, "strict": strict}
        with self._lock:
            if self._worker is None:
                try:
                    self._worker = _Worker()
                except OSError as exc:
                    raise TemplateUnavailable(f"the Go template worker cannot start: {exc}") from exc
            worker = self._worker
            healthy = False
            try:
                answer = worker.ask(request, self.timeout)
                healthy = True
            finally:
                if not healthy or worker.jobs >= JOBS_PER_WORKER:
                    worker.close()
                    self._worker = None
            self.calls += 1
        if not answer.get("ok"):
            error = str(answer.get("error") or "the Go template engine failed")
            if answer.get("engine") is False:
                raise TemplateUnavailable(error)
            raise TemplateError(error, str(answer.get("kind") or "execute"))
        return {str(k): str(v) for k, v in (answer.get("files") or {}).items()}

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None


_DEFAULT: GoTemplateRunner | None = None
_DEFAULT_LOCK = threading.Lock()


def default_runner() -> GoTemplateRunner:
    """The process-wide runner (started on first use, stopped at exit)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = GoTemplateRunner()
            atexit.register(_DEFAULT.close)
        return _DEFAULT
