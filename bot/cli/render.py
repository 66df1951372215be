"""``gitops-bot render``: print the rendered objects of a revision, per target (secrets masked)."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
from pathlib import Path

from bot.domain.config import CONFIG_PATH, ConfigError, parse_config
from bot.domain.diff import to_yaml
from bot.git.files import GitError, read_file_at, rev_parse
from bot.git.mirror import materialise
from bot.prchecks.build import UsageError, resolve_git_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo", type=Path, default=Path("."), help="local clone, worktree or bare repo (default .)"
    )
    parser.add_argument("--ref", default="HEAD", help="revision to render (default HEAD)")
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        help="only this target, or every target of this cluster; globs like 'flux/prod-*/*' or "
        "'prod-*' work (repeatable)",
    )
    parser.add_argument("--format", choices=("yaml", "json"), default="yaml")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every target renders, 1 when one fails, 2 on a usage error."""
    from bot.domain.render import discover
    from bot.render_runtime.engine import render_tree
    from bot.render_runtime.gotemplate_runner import default_runner

    try:
        git_dir = resolve_git_dir(args.repo)
        sha = rev_parse(git_dir, args.ref)
    except (UsageError, GitError) as exc:
        print(f"gitops-bot render: {exc}", file=sys.stderr)
        return 2
    try:
        config = parse_config(read_file_at(git_dir, sha, CONFIG_PATH))
    except ConfigError as exc:
        for f in exc.findings:
            print(f"warning: {f.path}:{f.line}: {f.message}", file=sys.stderr)
        config = {"version": 1}
    key = os.environ.get("GITOPS_BOT_DIFF_KEY", "").encode() or os.urandom(32)
    with materialise(git_dir, sha) as tree:
        only: list[str] = []
        if args.target:
            targets = discover(tree, config, secret_key=key, go_engine=default_runner()).targets
            known = sorted(t.name for t in targets)
            clusters = sorted({t.cluster for t in targets if t.cluster != "-"})
            unknown = []
            for pattern in args.target:  # a target name, or a cluster name: every target of it
                matched = fnmatch.filter(known, pattern)
                matched += [t.name for t in targets if fnmatch.fnmatchcase(t.cluster, pattern)]
                only += matched
                if not matched:
                    unknown.append(pattern)
            if unknown:
                print(f"gitops-bot render: unknown target(s): {', '.join(unknown)}", file=sys.stderr)
                print("known targets:\n  " + "\n  ".join(known), file=sys.stderr)
                print("known clusters:\n  " + "\n  ".join(clusters), file=sys.stderr)
                return 2
        rendered, findings = render_tree(tree, config, secret_key=key, only=only)
    for f in findings:
        print(f"{f.severity.value}: {f.path}:{f.line}: [{f.rule}] {f.message}", file=sys.stderr)
    if args.format == "json":
        out = [
            {
                "target": t.name,
                "cluster": t.cluster,
                "env": t.env,
                "kind": t.kind,
                "path": t.path,
                "objects": objs,
            }
            for t, objs in rendered
        ]
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        chunks = []
        for t, objs in rendered:
            header = f"# target: {t.name}  cluster: {t.cluster}  env: {t.env}  ({len(objs)} objects)"
            chunks.append(header + "".join("\n---\n" + to_yaml(o).rstrip("\n") for o in objs))
        sys.stdout.write("\n".join(chunks) + ("\n" if chunks else ""))
    return 1 if any(f.blocking for f in findings) else 0
