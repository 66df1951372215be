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

import base64
import threading
from pathlib import Path
from typing import Any

from bot.domain.render.gotemplate import TemplateError, TemplateUnavailable
from bot.render_runtime.sandbox import SandboxedWorker, WorkerFailed, WorkerSpec, process_wide

TIMEOUT = 30.0
WORKER_MAX_MEMORY = 2 * 1024**3
WORKER_CPU_SECONDS = 300
JOBS_PER_WORKER = 1000
MAX_ANSWER = 64 * 1024**2
WORKER_SCRIPT = Path(__file__).with_name("gotemplate_worker.py")


WORKER = WorkerSpec(
    WORKER_SCRIPT,
    prefix="gitops-bot-gotemplate-",
    max_memory=WORKER_MAX_MEMORY,
    cpu_seconds=WORKER_CPU_SECONDS,
    max_answer=MAX_ANSWER,
)


def _ask(worker: SandboxedWorker, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    try:
        return worker.ask(request, timeout)
    except WorkerFailed as exc:
        if exc.why == "unwritable":
            raise TemplateUnavailable("the Go template worker stopped") from exc
        if exc.why == "timeout":
            raise TemplateError(f"the templates took longer than {timeout:g} s to evaluate") from None
        if exc.why == "too_large":
            raise TemplateError("the templates produced more than 64 MiB") from None
        raise TemplateError("the templates stopped the Go template worker (a memory or CPU limit)") from exc


class GoTemplateRunner:
    """A :class:`~bot.domain.render.gotemplate.GoEngine` backed by one sandboxed worker (thread-safe)."""

    def __init__(self, *, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self._worker: SandboxedWorker | None = None
        self._lock = threading.Lock()
        self.calls = 0

    def render_chart(self, archive: bytes, values: dict[str, Any], *, strict: bool) -> dict[str, str]:
        request = {"archive": base64.b64encode(archive).decode(), "values": values, "strict": strict}
        with self._lock:
            if self._worker is None:
                try:
                    self._worker = SandboxedWorker(WORKER)
                except OSError as exc:
                    raise TemplateUnavailable(f"the Go template worker cannot start: {exc}") from exc
            worker = self._worker
            healthy = False
            try:
                answer = _ask(worker, request, self.timeout)
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


default_runner = process_wide(GoTemplateRunner)  # the process's runner, started on first use
