"""Command runners, one module per command; :data:`RUNNERS` maps a command name to its runner."""

from __future__ import annotations

from handlers.commands import diff, help, hold, promote, rollback, unhold, upgrade, validate
from handlers.commands.base import CommandResult, Invocation, Runner

RUNNERS: dict[str, Runner] = {
    "diff": diff.run,
    "validate": validate.run,
    "promote": promote.run,
    "hold": hold.run,
    "unhold": unhold.run,
    "rollback": rollback.run,
    "upgrade": upgrade.run,
    "help": help.run,
}

__all__ = ["RUNNERS", "CommandResult", "Invocation", "Runner"]
