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
    "upgrade": ("bot.cli.upgrade", "plan a cluster's Kubernetes upgrade (in place or blue/green)"),
    "dashboard": ("bot.cli.dashboard", "write the fleet compliance dashboard of a local clone as HTML"),
    "policy": ("bot.cli.policy", "Gatekeeper policy tools (verify suites)"),
    "sim": ("bot.cli.sim", "run the local GitHub simulator"),
    "demo": ("bot.cli.demo", "play a cluster request through its life on a local GitHub"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the CLI parser; with ``only``, import just that command's module.

    A command's module (and what it imports: aiohttp for ``serve``, the simulator for
    ``demo``) is loaded only when that command runs, so ``gitops-bot check`` starts fast.
    """
    parser = argparse.ArgumentParser(prog="gitops-bot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from bot.service import logmask

    logmask.install()  # every command's logs are masked like its other output
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    module = getattr(args, "_module", None)
    if module is None:
        parser.print_help()
        return 2
    result: int = module.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
