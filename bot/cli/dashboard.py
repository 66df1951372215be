"""``gitops-bot dashboard``: write the fleet dashboard of a local clone as one static HTML file."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo", type=Path, default=Path("."), help="local clone, worktree or bare repo (default .)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("fleet.html"), help="HTML file to write (default fleet.html)"
    )
    parser.add_argument(
        "--branch",
        action="append",
        default=None,
        help="environment branch to show (repeatable; default: the configuration's environment branches, "
        "else the current branch)",
    )
    parser.add_argument("--json", action="store_true", help="print the fleet JSON instead of writing HTML")
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep renders here between runs")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when the page was written, 2 on a usage error."""
    from bot.domain.fleet import FleetFacts, build_fleet
    from bot.domain.validate.eks import EksCatalog
    from bot.fleet.collect import collect_branch, environment_branches, read_config
    from bot.fleet.page import render_page
    from bot.git.files import GitError, git, rev_parse
    from bot.prchecks.build import UsageError, _secret_key, resolve_git_dir
    from bot.render_runtime.cache import RenderCache

    try:
        git_dir = resolve_git_dir(args.repo)
        head = rev_parse(git_dir, "HEAD")
    except (UsageError, GitError) as exc:
        print(f"gitops-bot dashboard: {exc}", file=sys.stderr)
        return 2
    config = read_config(git_dir, head)
    branches = args.branch or environment_branches(git_dir, config)
    if not branches:
        current = git(git_dir, "rev-parse", "--abbrev-ref", "HEAD").decode().strip()
        branches = [current]
    name = args.repo.resolve().name
    cache = RenderCache(args.cache_dir) if args.cache_dir else RenderCache()
    facts = FleetFacts()
    key = _secret_key()
    for branch in branches:
        try:
            clusters, env = collect_branch(git_dir, name, branch, secret_key=key, cache=cache, config=config)
        except GitError:
            print(f"gitops-bot dashboard: branch {branch!r} does not exist", file=sys.stderr)
            return 2
        facts.clusters.extend(clusters)
        facts.envs.append(env)
    fleet = build_fleet(facts, EksCatalog.bundled(), date.today(), datetime.now(UTC))
    if args.json:
        print(json.dumps(fleet, indent=2, sort_keys=True))
        return 0
    args.out.write_text(render_page(fleet), encoding="utf-8")
    c = fleet["counts"]
    print(
        f"wrote {args.out}: {c['clusters']} clusters on {len(branches)} branches, "
        f"{c['needs_action']} need action"
    )
    return 0
