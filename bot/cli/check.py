"""``gitops-bot check``: print the report the bot would post for ``base..head`` of a local clone."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bot.prchecks.build import UsageError, build_check


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo", type=Path, default=Path("."), help="local clone, worktree or bare repo (default .)"
    )
    parser.add_argument("--base", required=True, help="base revision (branch, tag or sha)")
    parser.add_argument("--head", required=True, help="head revision (branch, tag or sha)")
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep renders here between runs")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when nothing blocks, 1 when a finding blocks, 2 on a usage error."""
    from bot.render_runtime.cache import RenderCache

    cache = RenderCache(args.cache_dir) if args.cache_dir else RenderCache()
    try:
        result = build_check(args.repo, args.base, args.head, cache=cache)
    except UsageError as exc:
        print(f"gitops-bot check: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2, sort_keys=True))
    else:
        print("\n\n".join(result.comment_parts()))
    return 1 if result.report.blocking else 0
