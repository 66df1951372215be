"""The CommonMark parser the output tests render with (GitHub's tables on, raw HTML kept)."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.token import Token

MD = MarkdownIt("commonmark", {"html": True}).enable("table")


def flat(tokens: list[Token]) -> list[Token]:
    """Return every token, inline children included, in document order."""
    out: list[Token] = []
    for t in tokens:
        out.append(t)
        out.extend(flat(t.children or []))
    return out
