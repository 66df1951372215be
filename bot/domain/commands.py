"""Parse slash commands in pull-request comments: a command, an immediate reply, or ignore.

Modelled on Atlantis' comment parser. Rules a comment must follow to carry a command:

* the comment is parsed as CommonMark (what GitHub renders), and only the lines GitHub shows
  as plain paragraph text are read: a command starts such a line (optionally after a mention
  of the bot such as ``@gitops-bot /hold``) with ``/`` and a name; the name is case-insensitive;
* text GitHub does not show never carries a command: link reference definitions (their
  destinations and titles), HTML comments, HTML blocks and attributes; neither do code
  blocks, block quotes, lists, tables, headings, or a line starting with inline markup
  (inline code, HTML, emphasis, a link);
* only the first command of a comment counts;
* the bot's own comments (sender type ``Bot`` or the bot's login) are ignored;
* only the first :data:`MAX_BODY_CHARS` characters are read, and an over-long command line gets
  a usage reply instead of being parsed.

Paths such as ``/clusters/dev/x.yaml`` at the start of a line are not commands: a name must be
followed by whitespace or the end of the line.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from itertools import pairwise

from markdown_it import MarkdownIt

from bot.domain import escape
from bot.domain.help import COMMANDS, help_text, usage

MAX_BODY_CHARS = 65_536
"""GitHub's own limit on a comment body; anything after it is not read."""
MAX_LINE_CHARS = 1_000
"""The longest command line that is parsed; longer ones get a usage reply."""
MAX_REASON_CHARS = 500
"""Reasons (``/hold``, ``/rollback``) are cut to this length."""

_ENV_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_COMMAND_RE = re.compile(r"^/(?P<name>[A-Za-z][A-Za-z0-9_-]{0,31})(?=\s|$)(?P<rest>.*)$")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


@dataclass(frozen=True, slots=True)
class Command:
    """A command to run: ``name`` lower-case, ``args`` already checked, ``raw`` the line as typed."""

    name: str
    args: tuple[str, ...]
    raw: str


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer at once without running anything (usage errors, unknown commands).

    ``raw`` is the command line the answer is about ("" when there is none).
    """

    text: str
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Ignore:
    """Nothing to do; ``reason`` is for logs only."""

    reason: str = ""


Outcome = Command | Reply | Ignore


def parse_comment(
    body: str | None,
    *,
    sender_login: str = "",
    sender_type: str = "User",
    bot_login: str = "gitops-bot[bot]",
    enabled: Collection[str] | None = None,
) -> Outcome:
    """Return the outcome of one comment body.

    ``enabled`` restricts the commands this repository accepts (``None``: all); a disabled
    command gets a reply saying so. ``/help`` is always enabled.
    """
    if sender_type.lower() == "bot" or (sender_login and sender_login.lower() == bot_login.lower()):
        return Ignore("comment from a bot")
    if not body:
        return Ignore("empty comment")
    line = find_command_line(body, bot_login=bot_login)
    if line is None:
        return Ignore("no command")
    return parse_command_line(line, enabled=enabled)


def _markdown() -> MarkdownIt:
    # GitHub renders comments as GitHub Flavored Markdown: CommonMark plus tables and strikethrough.
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


_MD = _markdown()
_HIDDEN = "\x00"
"""Stands in for inline markup (code spans, HTML, links, emphasis) so a line that starts with it
is not read as a command line."""


def visible_lines(body: str) -> list[tuple[str, str]]:
    """Return the lines of ``body``'s top-level paragraphs: (as GitHub shows it, as typed).

    The body is parsed as CommonMark (GitHub's comment format), so text GitHub does not show is
    never seen here: link reference definitions (and their titles), HTML comments, HTML blocks
    and attributes. Code blocks, block quotes, lists, tables and headings carry no command
    either. In the shown form inline markup is a placeholder character, so ``` `/promote` ```
    or ``<b>/promote</b>`` does not start a command line; the typed form keeps the markup (a
    ``/hold`` reason is quoted as written, and escaped when echoed).
    """
    lines: list[tuple[str, str]] = []
    tokens = _MD.parse(body)
    for previous, token in pairwise(tokens):
        if token.type != "inline" or previous.type != "paragraph_open" or previous.level != 0:
            continue
        shown: list[str] = []
        typed: list[str] = []
        for child in token.children or ():
            if child.type in {"softbreak", "hardbreak"}:
                lines.append(("".join(shown), "".join(typed)))
                shown, typed = [], []
                continue
            if child.type == "text":
                shown.append(child.content)
                typed.append(child.content)
                continue
            shown.append(_HIDDEN)
            if child.type == "code_inline":
                typed.append(child.markup + child.content + child.markup)
            elif child.type == "html_inline":
                typed.append(" ".join(child.content.split()))
            else:
                typed.append(child.markup)
        lines.append(("".join(shown), "".join(typed)))
    return lines


def find_command_line(body: str, *, bot_login: str = "gitops-bot[bot]") -> str | None:
    """Return the first visible line of ``body`` that carries a command (stripped), or None."""
    text = body[:MAX_BODY_CHARS].translate(_INVISIBLE).replace("\u00a0", " ")
    mention = re.compile(
        r"^@" + re.escape(bot_login.lower().removesuffix("[bot]")) + r"(?:\[bot\])?[:,]?\s+", re.IGNORECASE
    )
    for shown, typed in visible_lines(text):
        if _COMMAND_RE.match(mention.sub("", shown.lstrip(" "), count=1)):
            return mention.sub("", typed.lstrip(" "), count=1).strip()
    return None


def parse_command_line(line: str, *, enabled: Collection[str] | None = None) -> Outcome:
    """Turn one command line (starting with ``/``) into a Command or a usage Reply."""
    if len(line) > MAX_LINE_CHARS:
        return Reply(
            f"That command line is {len(line)} characters long; the limit is {MAX_LINE_CHARS}.",
            line[:40] + "…",
        )
    match = _COMMAND_RE.match(line)
    if match is None:
        return Ignore("no command")
    name = match.group("name").lower()
    rest = match.group("rest").strip()
    spec = COMMANDS.get(name)
    if spec is None:
        return Reply(f"I don't know the command {code(f'/{name}')}.\n\n{help_text()}", line)
    if enabled is not None and name != "help" and name not in {e.lower() for e in enabled}:
        return Reply(
            f"{code(f'/{name}')} is turned off in this repository "
            "(`commands.enabled` in `.github/gitops-bot.yml` on the base branch).",
            line,
        )
    if spec.takes == "none":
        if rest and name != "help":
            return Reply(f"{code(f'/{name}')} takes no arguments. Usage: {usage(name)}", line)
        return Command(name, (), line)
    if spec.takes == "env":
        words = rest.split()
        if len(words) > 1:
            return Reply(f"{code(f'/{name}')} takes one environment name at most. Usage: {usage(name)}", line)
        if words and not _ENV_RE.match(words[0]):
            return Reply(
                f"{code(words[0])} is not an environment name (letters, digits, `.`, `_`, `-`). "
                f"Usage: {usage(name)}",
                line,
            )
        return Command(name, tuple(words), line)
    reason = " ".join(rest.split())
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return Command(name, (reason,) if reason else (), line)


def code(text: str) -> str:
    """Render ``text`` as inline code that nothing inside can break out of (no HTML, no mentions)."""
    text = text.replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def escape_text(text: str) -> str:
    """Make user text safe to echo in markdown: no HTML, no @-mentions, no links or emphasis."""
    return escape.text(text)  # the one escaping helper
