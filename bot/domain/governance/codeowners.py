"""CODEOWNERS parsing and matching with GitHub's semantics.

- The file is read from the BASE revision at the first of ``.github/CODEOWNERS``,
  ``CODEOWNERS``, ``docs/CODEOWNERS`` that exists (GitHub's order).
- Each line is ``pattern owner...``; ``#`` starts a comment; owners are ``@user``,
  ``@org/team`` or an email. The LAST matching pattern wins; a pattern without owners
  makes the path un-owned.
- Patterns follow gitignore: a leading ``/`` or a ``/`` in the middle anchors at the root,
  otherwise the pattern matches at any depth; ``*`` stays within a segment, ``**`` crosses
  segments; a pattern naming a folder covers everything below it; a trailing ``/*`` covers
  only the files directly inside (``docs/*`` does not own ``docs/a/b.md``). As on GitHub,
  ``!`` negation and ``[ ]`` ranges are not supported: such lines are reported, not used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.domain.governance.globs import translate
from bot.domain.model import Finding, Severity

LOCATIONS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")
_OWNER = re.compile(r"^(@[A-Za-z0-9](?:[A-Za-z0-9-]*)(?:/[A-Za-z0-9._-]+)?|[^@\s]+@[^@\s]+\.[^@\s]+)$")


@dataclass(frozen=True, slots=True)
class OwnerRule:
    """One CODEOWNERS line."""

    pattern: str
    owners: tuple[str, ...]
    line: int
    regex: re.Pattern[str]

    def matches(self, path: str) -> bool:
        return self.regex.match(path) is not None


@dataclass(frozen=True, slots=True)
class CodeOwners:
    """A parsed CODEOWNERS file; ``problems`` are lines GitHub would also ignore."""

    path: str
    rules: tuple[OwnerRule, ...]
    problems: tuple[Finding, ...] = field(default=())

    def rule_for(self, path: str) -> OwnerRule | None:
        """Return the last rule matching ``path`` (GitHub's precedence), or None."""
        for rule in reversed(self.rules):
            if rule.matches(path):
                return rule
        return None

    def owners_for(self, path: str) -> tuple[str, ...]:
        """Return the owners of ``path`` (empty when none or explicitly un-owned)."""
        rule = self.rule_for(path)
        return rule.owners if rule else ()


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Translate one CODEOWNERS pattern into a regular expression over repository paths."""
    dir_only = pattern.endswith("/")
    body = pattern.strip("/")
    anchored = pattern.startswith("/") or "/" in body
    prefix = "" if anchored else "(?:.*/)?"
    core = translate(body, folder_only_tail=True) if body else ".*"
    if body in ("*", "**") or not body:
        return re.compile(r".*\Z")
    if dir_only:
        return re.compile(prefix + core + r"/.*\Z")
    last = body.rsplit("/", 1)[-1]
    if last == "*" and "/" in body:
        return re.compile(prefix + core + r"\Z")
    return re.compile(prefix + core + r"(?:/.*)?\Z")


def _problem(path: str, line: int, message: str, hint: str) -> Finding:
    return Finding("codeowners", Severity.WARNING, path, line, message, hint)


def parse_codeowners(text: str, path: str = ".github/CODEOWNERS") -> CodeOwners:
    """Parse CODEOWNERS text; unusable lines become warnings, never exceptions."""
    rules: list[OwnerRule] = []
    problems: list[Finding] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = re.split(r"\s#", line, maxsplit=1)[0].strip()
        parts = re.split(r"(?<!\\)\s+", line)
        pattern, owners = parts[0], parts[1:]
        if pattern.startswith("!") or re.search(r"(?<!\\)\[", pattern):
            problems.append(
                _problem(
                    path,
                    lineno,
                    f"pattern `{pattern}` uses `!` or `[ ]`, which CODEOWNERS does not support; line ignored",
                    "Write the pattern without negation or character ranges.",
                )
            )
            continue
        bad = [o for o in owners if not _OWNER.match(o)]
        if bad:
            problems.append(
                _problem(
                    path,
                    lineno,
                    f"owner(s) {', '.join(bad)} are not @user, @org/team or an email; they are ignored",
                    "Write owners as `@login`, `@org/team-slug` or `name@example.com`.",
                )
            )
        good = tuple(o for o in owners if _OWNER.match(o))
        rules.append(OwnerRule(pattern, good, lineno, compile_pattern(pattern.replace("\\ ", " "))))
    return CodeOwners(path, tuple(rules), tuple(problems))


def find_codeowners(read: Iterable[tuple[str, str | None]]) -> CodeOwners | None:
    """Return the first existing CODEOWNERS from ``(path, text-or-None)`` pairs in GitHub's order."""
    for path, text in read:
        if text is not None:
            return parse_codeowners(text, path)
    return None


def owner_is_team(owner: str) -> bool:
    """True for ``@org/team`` owners."""
    return owner.startswith("@") and "/" in owner
