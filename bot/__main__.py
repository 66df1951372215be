"""Command-line entry point: ``gitops-bot <command>`` or ``python -m bot <command>``.

Each command lives in its own module under :mod:`bot.cli` and exposes two functions:
``add_arguments(parser)`` and ``run(args) -> int``. Adding a command is adding a module
and one line to :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("bot.cli.serve", "run the webhook service (and the in-process worker)"),
    "worker": ("bot.cli.worker", "run only the delivery worker"),
    "deliveries": ("bot.cli.deliveries", "show or retry stored webhook deliveries"),
    "replay": ("bot.cli.replay", "run one delivery from a file through the live code path"),
    "render": ("bot.cli.render", "print the rendered objects of a revision, per target"),
    "check": ("bot.cli.check", "run the pull-request checks on a local clone"),
    "policy": ("bot.cli.policy", "Gatekeeper policy tools (verify suites)"),
    "sim": ("bot.cli.sim", "run the local GitHub simulator"),
    "demo": ("bot.cli.demo", "play a cluster request through its life on a local GitHub"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gitops-bot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = getattr(args, "_module", None)
    if module is None:
        parser.print_help()
        return 2
    result: int = module.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
