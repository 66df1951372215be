"""Path globs used by approval rules, signature overrides and environment mapping.

``*`` matches within one path segment, ``?`` one character other than ``/``, ``**`` any
number of segments (``clusters/prod/**`` matches every file below ``clusters/prod``, and
``**/kustomization.yaml`` matches at any depth). Patterns are anchored at the repository
root; a leading ``/`` is ignored. Matching is case-sensitive, like git.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


def translate(pattern: str, *, folder_only_tail: bool = False) -> str:
    """Translate a glob into a regular expression (unanchored) over ``/``-separated paths.

    A trailing ``/**`` matches everything below the folder, and the folder itself unless
    ``folder_only_tail``. ``\\x`` escapes ``x``.
    """
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == n:
            out.append("/.*" if folder_only_tail else "(?:/.*)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compile one repository path glob into an anchored regular expression.

    A pattern ending in ``/`` names a folder and matches everything below it.
    """
    body = pattern.lstrip("/")
    if body.endswith("/"):
        body += "**"
    return re.compile(translate(body) + r"\Z")


def glob_match(pattern: str, path: str) -> bool:
    """Return True when ``path`` (relative, ``/``-separated) matches ``pattern``."""
    return compile_glob(pattern).match(path) is not None


def any_match(patterns: Iterable[str], path: str) -> bool:
    """Return True when ``path`` matches at least one of ``patterns``."""
    return any(glob_match(p, path) for p in patterns)


@lru_cache(maxsize=256)
def _env_pattern(pattern: str) -> re.Pattern[str]:
    head, sep, tail = pattern.lstrip("/").partition("{env}")
    if not sep:
        raise ValueError(f"environment pattern {pattern!r} has no {{env}} placeholder")
    return re.compile(translate(head) + r"(?P<env>[^/]+)" + translate(tail) + r"\Z")


def env_from_path(patterns: Iterable[str], path: str) -> str | None:
    """Return the environment named by the first ``{env}`` pattern that matches ``path``.

    ``clusters/{env}/**`` maps ``clusters/prod/eu-1/cluster.yaml`` to ``prod``. Patterns
    without ``{env}`` are skipped; None when nothing matches.
    """
    for pattern in patterns:
        if "{env}" not in pattern:
            continue
        m = _env_pattern(pattern).match(path)
        if m:
            return m.group("env")
    return None
