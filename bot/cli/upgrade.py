"""``gitops-bot upgrade plan``: the upgrade plan of one cluster, from a local clone."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

from bot.aws import eks as eks_aws
from bot.domain.upgrades.plan import STRATEGIES, PlanError, UpgradeSettings, parse_target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    plan = sub.add_parser(
        "plan",
        help="print the upgrade plan of one cluster",
        description="print the upgrade plan of one cluster",
    )
    plan.add_argument(
        "--repo", type=Path, default=Path("."), help="local clone, worktree or bare repo (default .)"
    )
    plan.add_argument("--ref", default="HEAD", help="revision to read (default HEAD)")
    plan.add_argument("--cluster", required=True, help="cluster name (its request's name)")
    plan.add_argument(
        "--to", default=None, help="target Kubernetes version (default: newest in standard support)"
    )
    plan.add_argument("--strategy", choices=STRATEGIES, default="in-place")
    plan.add_argument("--format", choices=("markdown", "json"), default="markdown")
    plan.add_argument(
        "--aws",
        action="store_true",
        help="ask AWS for the calendar and add-on versions, as `eks.online: true` in the config does",
    )
    plan.add_argument("--today", type=date.fromisoformat, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Exit 0 with the plan, 2 on a usage error (unknown cluster or version, a downgrade)."""
    from bot.domain.upgrades.markdown import plan_markdown
    from bot.prchecks.build import UsageError
    from bot.upgrades.facts import load_cluster, plan_cluster

    today = args.today or date.today()
    key = os.environ.get("GITOPS_BOT_DIFF_KEY", "").encode() or os.urandom(32)
    try:
        facts, fleet = load_cluster(args.repo, args.ref, args.cluster, secret_key=key, fast=True)
        config = (
            {**fleet.config, "eks": {**(fleet.config.get("eks") or {}), "online": True}}
            if args.aws
            else fleet.config
        )
        aws = eks_aws.session_for(config)
        catalog = eks_aws.catalog_for(config, aws)
        target = parse_target(args.to, catalog) if args.to else None
        plan = plan_cluster(
            facts,
            catalog,
            today,
            to=target,
            strategy=args.strategy,
            settings=UpgradeSettings.from_config(fleet.config),
            aws=aws,
        )
    except (UsageError, PlanError) as exc:
        print(f"gitops-bot upgrade plan: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(plan.to_json(), indent=2))
    else:
        sys.stdout.write(plan_markdown(plan))
    return 0
