"""``gitops-bot demo``: a cluster request through its life, then a blue/green cluster upgrade, on a local
GitHub; no credentials needed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workdir", type=Path, help="keep the simulator's repositories and the bot's data here"
    )


def run(args: argparse.Namespace) -> int:
    if shutil.which("git") is None or (shutil.which("kubectl") is None and shutil.which("kustomize") is None):
        print("gitops-bot demo needs git and kubectl (or kustomize) on PATH", file=sys.stderr)
        return 2
    from bot.sim.demo import run_demo

    # The story is the output; the service's own logs go nowhere (use `serve` to see them).
    logging.basicConfig(level=logging.CRITICAL)

    def out(line: str) -> None:
        print(line, flush=True)

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run_demo(args.workdir, out))
    else:
        with tempfile.TemporaryDirectory(prefix="gitops-bot-demo-") as tmp:
            result = asyncio.run(run_demo(Path(tmp), out))
    promoted = result.get("states", {}).get(result.get("prod")) == "merged"
    return 0 if promoted and result.get("upgrade", {}).get("phase") == "done" else 1
