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

import os
import threading
from pathlib import Path
from typing import Any

from bot.render_runtime.sandbox import SandboxedWorker, WorkerFailed, WorkerSpec, process_wide

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


WORKER = WorkerSpec(
    WORKER_SCRIPT,
    prefix="gitops-bot-helm-",
    max_memory=WORKER_MAX_MEMORY,
    cpu_seconds=WORKER_CPU_SECONDS,
    max_answer=MAX_ANSWER,
    env={"KUBECONFIG": "/dev/null", **{f"HELM_{d}_HOME": "{home}" for d in ("CACHE", "CONFIG", "DATA")}},
)


def _ask(worker: SandboxedWorker, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    try:
        return worker.ask(request, timeout)
    except WorkerFailed as exc:
        if exc.why == "timeout":
            raise HelmRenderFailed(f"the chart took longer than {timeout:g} s to render") from None
        if exc.why == "too_large":
            raise HelmRenderFailed("the chart rendered more than 64 MiB") from None
        raise HelmRenderFailed(f"the Helm worker stopped ({exc.detail})") from exc


class HelmRunner:
    """A pool of sandboxed Helm workers; :meth:`render` is safe to call from many threads."""

    def __init__(self, *, workers: int | None = None, timeout: float = RENDER_TIMEOUT) -> None:
        self.size = max(1, workers or os.cpu_count() or 1)
        self.timeout = timeout
        self._idle: list[SandboxedWorker] = []
        self._started = 0
        self._cond = threading.Condition()
        self.renders = 0

    def _acquire(self) -> SandboxedWorker:
        with self._cond:
            while not self._idle and self._started >= self.size:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._started += 1
        try:
            return SandboxedWorker(WORKER)
        except OSError:
            with self._cond:
                self._started -= 1
                self._cond.notify()
            raise

    def _release(self, worker: SandboxedWorker, healthy: bool) -> None:
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
            answer = _ask(worker, request, self.timeout)
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


default_runner = process_wide(HelmRunner)  # the process's pool (a worker per CPU), made on first use
