"""Parse slash commands in pull-request comments: a command, an immediate reply, or ignore.

Modelled on Atlantis' comment parser. Rules a comment must follow to carry a command:

* the command starts a line (up to three spaces of indentation, optionally after a mention of
  the bot such as ``@gitops-bot /hold``) with ``/`` and a name; the name is case-insensitive;
* lines inside fenced code blocks (`````/``~~~``), indented code (four spaces or a tab),
  block quotes (``> /promote``), HTML comments and ``<pre>`` blocks never carry a command,
  and neither does inline code since the line would not start with ``/``;
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
_FENCE_RE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})")
_QUOTE_RE = re.compile(r"^ {0,3}>")
_HTML_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_PRE_OPEN_RE = re.compile(r"^ {0,3}<(pre|code|textarea|script|style)\b", re.IGNORECASE)
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


def find_command_line(body: str, *, bot_login: str = "gitops-bot[bot]") -> str | None:
    """Return the first line of ``body`` that carries a command (stripped), or None."""
    text = body[:MAX_BODY_CHARS].translate(_INVISIBLE).replace("\u00a0", " ")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _HTML_COMMENT_RE.sub("", text)
    mention = re.compile(
        r"^@" + re.escape(bot_login.lower().removesuffix("[bot]")) + r"(?:\[bot\])?[:,]?\s+", re.IGNORECASE
    )
    fence: str | None = None
    html_block: str | None = None
    for line in text.split("\n"):
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                fence = None
            continue
        if html_block is not None:
            if f"</{html_block}" in line.lower():
                html_block = None
            continue
        opening = _FENCE_RE.match(line)
        if opening:
            fence = opening.group("fence")
            continue
        pre = _PRE_OPEN_RE.match(line)
        if pre:
            tag = pre.group(1).lower()
            if f"</{tag}" not in line.lower():
                html_block = tag
            continue
        if line.startswith("\t") or line.startswith("    ") or _QUOTE_RE.match(line):
            continue
        candidate = mention.sub("", line.lstrip(" "), count=1)
        if _COMMAND_RE.match(candidate):
            return candidate.strip()
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
