"""The one escaping helper: every string from a pull request goes through it before markdown.

File paths, object and target names, branch names, titles, messages and command arguments
can hold anything: backticks, pipes, newlines, HTML, ``@team`` mentions, link syntax. Each
function here returns text that renders (CommonMark with GitHub's tables) as exactly the
characters given, on one line, with no HTML, no link and no live mention:

* :func:`text` for prose and table cells: markup characters are backslash-escaped, ``<``,
  ``>`` and ``&`` written as entities;
* :func:`code` for a code span (paths, names: copyable), fenced with more backticks than the
  value holds;
* :func:`message` for the bot's own sentences that quote PR strings in single backticks
  (findings): each quoted part becomes a :func:`code` span, the rest :func:`text`;
* :func:`html` for text inside raw HTML (``<summary>``), where markdown is not parsed.

``table=True`` also escapes ``|``, which GitHub's tables split on even inside code spans.
Newlines become spaces (a line break would end a table row or an HTML block). A mention's
``@`` (and a ``#123`` reference, a bare URL's ``://``) gets a zero-width space outside code, so
GitHub links nothing and notifies nobody.
"""

from __future__ import annotations

import html as _html
import re

ZERO_WIDTH = "\u200b"  # a zero-width space: GitHub links no mention or reference across it
# what starts markup inline: escapes, code, emphasis, links, tables, GFM strike, math (HTML and
# entities: ``<``, ``>`` and ``&`` become entities)
_PUNCT = re.compile(r"([\\`*_|~$])")
_BRACKETS = str.maketrans({"[": "&#91;", "]": "&#93;"})  # no ``](`` left to look like a link
# what starts a block at the beginning of a line: lists, quotes, headings, setext underlines
_LEADING = re.compile(r"^(\d{0,9})([-+=>#.)])")
_LINES = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85\t]+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_BACKTICKS = re.compile(r"`+")


def _one_line(value: object) -> str:
    return _CONTROL.sub("", _LINES.sub(" ", str(value)))


_MENTION = re.compile(r"(?<![A-Za-z0-9])@")
_REFERENCE = re.compile(r"#(?=[0-9])")


def _inert(value: str) -> str:
    """Break what GitHub links in plain text: ``@mentions``, ``#123`` references, bare URLs."""
    value = _REFERENCE.sub("#" + ZERO_WIDTH, _MENTION.sub("@" + ZERO_WIDTH, value))
    return value.replace("://", ":" + ZERO_WIDTH + "//").replace("www.", "www" + ZERO_WIDTH + ".")


def text(value: object, *, table: bool = False) -> str:
    """Return ``value`` as literal markdown text: no markup, link, HTML or mention survives.

    ``table`` is accepted for symmetry with :func:`code`: ``|`` is always escaped here.
    """
    del table  # pipes are always escaped
    return _text(value, first=True)


def _text(value: object, *, first: bool) -> str:
    escaped = _PUNCT.sub(r"\\\1", _html.escape(_inert(_one_line(value)), quote=False)).translate(_BRACKETS)
    # at the start of a line: indentation would make a code block, a marker a list or heading
    return _LEADING.sub(r"\1\\\2", escaped.lstrip(" ")) if first else escaped


def code(value: object, *, table: bool = False) -> str:
    """Return ``value`` as one inline code span showing exactly its characters (on one line)."""
    body = _one_line(value)
    if not body:
        return ""
    longest = max((len(m) for m in _BACKTICKS.findall(body)), default=0)
    fence = "`" * (longest + 1)
    if body.strip(" ") and (body.startswith(("`", " ")) or body.endswith(("`", " "))):
        body = f" {body} "  # CommonMark strips one space from each side of such a span
    if table:
        body = body.replace("|", "\\|")
    return f"{fence}{body}{fence}"


def message(value: object, *, table: bool = False) -> str:
    """Return a sentence whose single-backtick spans are code: ``a `b` c`` -> text, code, text.

    The bot writes its messages this way and quotes PR strings between backticks; a quoted
    string holding a backtick only shifts the split, each part is still escaped.
    """
    parts = _one_line(value).split("`")
    if len(parts) % 2 == 0:  # an odd number of backticks: the last one is a plain character
        parts[-2:] = [parts[-2] + "`" + parts[-1]]
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(code(part, table=table) if part else "")
        elif part:
            out.append(_text(part, first=i == 0))
    return "".join(out)


def html(value: object) -> str:
    """Return ``value`` for text inside raw HTML (``<summary>``, ``<b>``, ``<code>``)."""
    return _html.escape(_inert(_one_line(value)), quote=True)
