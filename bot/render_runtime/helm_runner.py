"""Run the embedded Helm engine (helm-python-sdk) in sandboxed worker processes.

The engine is a Go shared library loaded into a separate Python process
(:mod:`bot.render_runtime.helm_worker`), never into the bot: a chart from a pull request runs
there with

- its own process, started with ``python -I`` and an environment holding only ``PATH``, an empty
  temporary ``HOME``/Helm folders, ``KUBECONFIG=/dev/null`` and ``NO_PROXY=*``;
- no network: a new network namespace (``unshare -rn``) when the kernel allows it; the engine
  itself never opens a socket to render (``lookup`` returns nothing, dependencies come only
  from the chart's ``charts/`` folder);
- limits: 2 GiB of address space and :data:`WORKER_CPU_SECONDS` of CPU per worker (``prlimit``),
  :data:`RENDER_TIMEOUT` seconds of wall time per chart (the worker is killed past it);
  a worker is replaced after :data:`JOBS_PER_WORKER` renders, so the CPU budget is per few
  hundred charts, not per bot lifetime.

Workers are kept between renders (starting one costs about 0.4 s: Python plus the 85 MB library)
and render one chart at a time; :class:`HelmRunner` holds up to ``workers`` of them.
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
from functools import cache
from pathlib import Path
from typing import Any

RENDER_TIMEOUT = 60.0
WORKER_MAX_MEMORY = 2 * 1024**3
WORKER_CPU_SECONDS = 600
JOBS_PER_WORKER = 500
MAX_ANSWER = 64 * 1024**2
WORKER_SCRIPT = Path(__file__).with_name("helm_worker.py")


class HelmRenderFailed(RuntimeError):
    """The chart did not render; the message is Helm's (or says which limit was hit)."""


class HelmEngineMissing(RuntimeError):
    """The Helm engine (helm-python-sdk) is not installed or does not load."""


@cache
def network_isolation() -> tuple[str, ...]:
    """Return the ``unshare`` prefix that gives the worker an empty network namespace, when allowed."""
    unshare = shutil.which("unshare")
    if not unshare:
        return ()
    try:
        ok = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return (unshare, "-rn") if ok.returncode == 0 else ()


@cache
def _limits() -> tuple[str, ...]:
    prlimit = shutil.which("prlimit")
    return (prlimit, f"--as={WORKER_MAX_MEMORY}", f"--cpu={WORKER_CPU_SECONDS}") if prlimit else ()


def sandbox_command() -> list[str]:
    """The command line of one worker: limits, then the network namespace, then isolated Python."""
    return [*_limits(), *network_isolation(), sys.executable, "-I", str(WORKER_SCRIPT)]


class _Worker:
    def __init__(self) -> None:
        self.home = tempfile.mkdtemp(prefix="gitops-bot-helm-")
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": self.home,
            "LC_ALL": "C",
            "KUBECONFIG": "/dev/null",
            "NO_PROXY": "*",
            "no_proxy": "*",
            "HELM_CACHE_HOME": self.home,
            "HELM_CONFIG_HOME": self.home,
            "HELM_DATA_HOME": self.home,
        }
        self.proc = subprocess.Popen(
            sandbox_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
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
            raise HelmRenderFailed(f"the Helm worker stopped ({self._why()})") from exc
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HelmRenderFailed(f"the chart took longer than {timeout:g} s to render")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise HelmRenderFailed(f"the Helm worker stopped ({self._why()})")
            self._buffer += chunk
            if len(self._buffer) > MAX_ANSWER:
                raise HelmRenderFailed("the chart rendered more than 64 MiB")
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


class HelmRunner:
    """A pool of sandboxed Helm workers; :meth:`render` is safe to call from many threads."""

    def __init__(self, *, workers: int | None = None, timeout: float = RENDER_TIMEOUT) -> None:
        self.size = max(1, workers or os.cpu_count() or 1)
        self.timeout = timeout
        self._idle: list[_Worker] = []
        self._started = 0
        self._cond = threading.Condition()
        self.renders = 0

    def _acquire(self) -> _Worker:
        with self._cond:
            while not self._idle and self._started >= self.size:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._started += 1
        try:
            return _Worker()
        except OSError:
            with self._cond:
                self._started -= 1
                self._cond.notify()
            raise

    def _release(self, worker: _Worker, healthy: bool) -> None:
        if not healthy or worker.jobs >= JOBS_PER_WORKER:
            worker.close()
            with self._cond:
                self._started -= 1
                self._cond.notify()
            return
        with self._cond:
            self._idle.append(worker)
            self._cond.notify()

    def render(
        self,
        chart_dir: Path,
        *,
        key: str,
        values: dict[str, Any],
        name: str,
        namespace: str,
        crds: bool,
    ) -> list[tuple[str, str]]:
        """Render the chart in ``chart_dir``; return (template path, manifest text) pairs.

        ``key`` identifies the chart's content (a digest of its files): a worker keeps charts
        it loaded under it. Raises :class:`HelmRenderFailed` with Helm's message, or
        :class:`HelmEngineMissing`.
        """
        request = {
            "chart": os.path.abspath(chart_dir),
            "key": key,
            "values": values,
            "name": name,
            "namespace": namespace,
            "crds": crds,
        }
        worker = self._acquire()
        healthy = False
        try:
            answer = worker.ask(request, self.timeout)
            healthy = True
        finally:
            self._release(worker, healthy)
        self.renders += 1
        if not answer.get("ok"):
            error = str(answer.get("error") or "Helm failed")
            if answer.get("engine") is False:
                raise HelmEngineMissing(error)
            raise HelmRenderFailed(error.replace(str(chart_dir), "<chart>"))
        return [(str(p), str(t)) for p, t in answer.get("manifests") or []]

    def close(self) -> None:
        """Stop every idle worker (busy ones stop when released)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._started -= len(idle)
        for worker in idle:
            worker.close()


_DEFAULT: HelmRunner | None = None
_DEFAULT_LOCK = threading.Lock()


def default_runner() -> HelmRunner:
    """The process-wide runner (one worker per CPU, started on first use, stopped at exit)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = HelmRunner()
            atexit.register(_DEFAULT.close)
        return _DEFAULT
