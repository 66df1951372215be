"""``gitops-bot policy verify DIR``: run Gatekeeper ``suite.yaml`` test suites like ``gator verify``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.domain.policy import verify_suites


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``verify`` sub-command."""
    sub = parser.add_subparsers(dest="policy_command", metavar="SUBCOMMAND")
    verify = sub.add_parser("verify", help="run every suite.yaml under DIR and report each case")
    verify.add_argument("dir", type=Path, metavar="DIR", help="folder (or one suite file) to verify")


def run(args: argparse.Namespace) -> int:
    """Run the sub-command; exit 1 when any case fails or no suite is found, 2 on bad usage."""
    if getattr(args, "policy_command", None) != "verify":
        print("usage: gitops-bot policy verify DIR", file=sys.stderr)
        return 2
    directory: Path = args.dir
    if not directory.exists():
        print(f"gitops-bot policy verify: {directory}: no such file or directory", file=sys.stderr)
        return 2
    report = verify_suites(directory)
    print(report.render())
    return 0 if report.ok else 1
