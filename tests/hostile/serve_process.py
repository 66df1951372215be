"""A real ``python -m bot serve`` process for crash tests: start, SIGKILL, start again on its port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import aiohttp

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """One `serve` replica; ``env`` adds to the environment (settings), the port stays the same."""

    def __init__(self, name: str, env: Mapping[str, str], workdir: Path, *, worker: str = "off") -> None:
        self.name = name
        self.port = free_port()
        self.workdir = workdir
        self.worker = worker
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "WARNING",
            "GITOPS_BOT_DATA_DIR": str(workdir / f"data-{name}"),
            **env,
            "PORT": str(self.port),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return (self.workdir / f"{self.name}-{self.starts}.log").read_text(errors="replace")[-3000:]

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Start and wait until ``/readyz`` answers 200 (fails with the log when the process exits)."""
        self.starts += 1
        log = open(self.workdir / f"{self.name}-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--worker", self.worker, "--port", str(self.port)],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(600):
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log_text()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{self.url}/readyz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name} never became ready")

    def kill(self) -> None:
        """SIGKILL: no clean-up, no flush, like a node dying."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
