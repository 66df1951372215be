"""The slash commands the bot knows, and their help text (one GitHub-friendly table)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """What a command takes and what it does, as shown in the help table."""

    name: str
    syntax: str
    summary: str
    takes: Literal["none", "env", "text"]
    needs_write: bool = True


COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec("diff", "/diff", "Render this PR again and refresh the diff comment.", "none"),
        CommandSpec("validate", "/validate", "Run every check on this PR again.", "none"),
        CommandSpec(
            "promote",
            "/promote [env]",
            "Open (or retry) the promotion of this merged PR to `env`, by default the next environment.",
            "env",
        ),
        CommandSpec(
            "hold", "/hold [reason]", "Stop this PR or promotion from merging until `/unhold`.", "text"
        ),
        CommandSpec("unhold", "/unhold", "Release a `/hold`.", "none"),
        CommandSpec("rollback", "/rollback [reason]", "Open a PR that reverts this merged PR.", "text"),
        CommandSpec(
            "upgrade",
            "/upgrade <cluster> [to <version>] [in-place|blue-green]",
            "Start (or resume) the upgrade of a cluster as a series of PRs, tracked in an issue. "
            "`/hold`, `/unhold` and `/rollback` on that issue pause, resume and roll back its traffic.",
            "text",
        ),
        CommandSpec("help", "/help", "Show this table.", "none", needs_write=False),
    )
}
"""Every command by name; the order is the order of the help table."""

ALL_COMMANDS: tuple[str, ...] = tuple(COMMANDS)


def usage(name: str) -> str:
    """Return the syntax of one command as inline code."""
    return f"`{COMMANDS[name].syntax}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def help_text() -> str:
    """Return the help table in GitHub markdown."""
    # a "|" splits a table cell even inside a code span, unless escaped
    rows = "\n".join(f"| `{_cell(spec.syntax)}` | {spec.summary} |" for spec in COMMANDS.values())
    return (
        "<details open><summary>gitops-bot commands</summary>\n\n"
        "| Command | What it does |\n| --- | --- |\n"
        f"{rows}\n\n"
        "Write the command at the start of a line of a PR comment, one per comment (`/upgrade` also in an "
        "issue). Everyone may ask for `/help`; the other commands need write, maintain or admin permission "
        "(`/upgrade` of a production cluster: maintain or admin, see `upgrades.min_role`).\n"
        "</details>"
    )


HELP = help_text()
"""The help table, ready to post."""
