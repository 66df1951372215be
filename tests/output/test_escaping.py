"""No markdown or mention injection: every PR string, rendered by a CommonMark parser, stays text."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it.token import Token

from bot.domain import escape
from bot.domain.escape import ZERO_WIDTH
from tests.output.markdown import MD, flat

SAFE_INLINE = {"text", "text_special", "softbreak"}
TABLE = {
    "table_open",
    "table_close",
    "thead_open",
    "thead_close",
    "tbody_open",
    "tbody_close",
    "tr_open",
    "tr_close",
    "th_open",
    "th_close",
    "td_open",
    "td_close",
    "inline",
}
LIVE = re.compile(r"(?<![A-Za-z0-9])@[A-Za-z0-9_-]|#[0-9]|://|www\.", re.IGNORECASE)

# arbitrary strings, weighted towards what breaks markdown
NASTY = st.lists(
    st.one_of(
        st.sampled_from([*"`|<>@#&*_[]()!\\\n\r\t -:/.~=\"'{}", "www.", "://", "<!--", "-->", "&#64;"]),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
).map("".join)
ATTACKS = [
    "@octocat please merge",
    "@org/team",
    "`` ` code breakout ` ``",
    "x | y\n| z |",
    "<img src=x onerror=alert(1)>",
    "</summary></details><script>alert(1)</script>",
    "[click](https://evil.example)",
    "![i](https://evil.example/i.png)",
    "see https://evil.example and www.evil.example",
    "line1\n\n# heading\n- item",
    "&lt;b&gt; &#64;octocat",
    "**bold** _em_ ~~s~~",
    "fixes #1",
]
STRINGS = st.one_of(st.sampled_from(ATTACKS), NASTY)


def shown(value: str) -> str:
    """What a reader should see: one line, control characters dropped, mentions broken."""
    line = re.sub(r"[\r\n\u2028\u2029\x0b\x0c\x85\t]+", " ", value)
    line = re.sub(r"[\x00-\x08\x0e-\x1f\x7f]", "", line)
    line = re.sub(r"#(?=[0-9])", "#" + ZERO_WIDTH, re.sub(r"(?<![A-Za-z0-9])@", "@" + ZERO_WIDTH, line))
    return line.replace("://", ":" + ZERO_WIDTH + "//").replace("www.", "www" + ZERO_WIDTH + ".")


def cells(tokens: list[Token]) -> list[list[Token]]:
    rows: list[list[Token]] = []
    for i, t in enumerate(tokens):
        if t.type == "tr_open":
            rows.append([])
        if t.type == "inline" and i and tokens[i - 1].type in ("td_open", "th_open"):
            rows[-1].append(t)
    return rows


def cell_text(inline: Token) -> str:
    return "".join(c.content for c in inline.children or [])


@settings(max_examples=150, deadline=None)
@given(STRINGS)
def test_text_in_a_table_cell_is_one_cell_of_plain_text(value: str) -> None:
    source = f"| a | b |\n|---|---|\n| {escape.text(value, table=True)} | end |\n"
    tokens = MD.parse(source)
    assert {t.type for t in tokens} <= TABLE
    rows = cells(tokens)
    assert len(rows) == 2 and len(rows[1]) == 2
    assert {c.type for c in flat(rows[1])} <= SAFE_INLINE | {"inline"}
    assert cell_text(rows[1][0]).strip() == shown(value).strip()
    assert cell_text(rows[1][1]) == "end"
    assert not LIVE.search(cell_text(rows[1][0]))


@settings(max_examples=150, deadline=None)
@given(STRINGS)
def test_text_in_a_paragraph_is_plain_text(value: str) -> None:
    tokens = MD.parse(f"Before {escape.text(value)} after\n")
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"]
    assert {c.type for c in flat(tokens)} <= SAFE_INLINE | {"paragraph_open", "inline", "paragraph_close"}
    assert cell_text(tokens[1]).split() == f"Before {shown(value)} after".split()


@settings(max_examples=150, deadline=None)
@given(STRINGS, st.booleans())
def test_code_is_one_code_span_showing_the_value(value: str, table: bool) -> None:
    span = escape.code(value, table=table)
    line = re.sub(r"[\x00-\x08\x0e-\x1f\x7f]", "", re.sub(r"[\r\n\u2028\u2029\x0b\x0c\x85\t]+", " ", value))
    source = f"| a | b |\n|---|---|\n| x {span} y | end |\n" if table else f"x {span} y\n"
    inline = [t for t in MD.parse(source) if t.type == "inline"][-2 if table else -1]
    kids = inline.children or []
    codes = [c for c in kids if c.type == "code_inline"]
    if not line:
        assert span == "" and not codes
        return
    assert len(codes) == 1 and codes[0].content == line
    assert {c.type for c in kids} <= SAFE_INLINE | {"code_inline"}


@settings(max_examples=150, deadline=None)
@given(st.lists(STRINGS, max_size=4))
def test_message_quotes_stay_code_and_the_rest_text(parts: list[str]) -> None:
    value = "`".join(parts)
    source = f"| a | b |\n|---|---|\n| {escape.message(value, table=True)} | end |\n"
    tokens = MD.parse(source)
    rows = cells(tokens)
    assert {t.type for t in tokens} <= TABLE and len(rows) == 2 and len(rows[1]) == 2
    kids = flat(rows[1])
    assert {c.type for c in kids} <= SAFE_INLINE | {"code_inline", "inline"}
    assert not any(LIVE.search(c.content) for c in kids if c.type in SAFE_INLINE)
    assert cell_text(rows[1][1]) == "end"


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.data: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.data.append((self.tags[-1] if self.tags else "", data))

    def handle_comment(self, data: str) -> None:
        self.tags.append("!--")


@settings(max_examples=150, deadline=None)
@given(STRINGS)
def test_html_inside_a_details_summary_stays_text(value: str) -> None:
    source = f"<details><summary>{escape.html(value)}</summary>\n\nbody\n\n</details>\n"
    parser = Tags()
    parser.feed(MD.render(source))
    assert parser.tags == ["details", "summary", "p"]
    summary = "".join(d for tag, d in parser.data if tag == "summary").removesuffix("\n")
    assert summary == shown(value)
    assert not LIVE.search(summary)


def test_examples() -> None:
    assert escape.code("a`b") == "``a`b``"
    assert escape.code("`x`") == "`` `x` ``"
    assert escape.code("a|b", table=True) == "`a\\|b`"
    assert escape.text("@octocat") == "@\u200boctocat"
    assert escape.text("1. x") == "1\\. x" and escape.text("- x") == "\\- x"
    assert (
        escape.text("healthy for 40m (soak 30m), dev@example.com")
        == "healthy for 40m (soak 30m), dev@example.com"
    )
    assert escape.message("could not build `apps/x`") == "could not build `apps/x`"


@settings(max_examples=150, deadline=None)
@given(STRINGS)
def test_text_at_the_start_of_a_line_or_list_item_starts_no_block(value: str) -> None:
    for source in (f"{escape.text(value)}\n", f"- {escape.text(value)}\n"):
        tokens = MD.parse(source)
        blocks = [t.type for t in tokens if t.type != "inline"]
        assert set(blocks) <= {
            "paragraph_open",
            "paragraph_close",
            "bullet_list_open",
            "bullet_list_close",
            "list_item_open",
            "list_item_close",
        }, source
        assert {c.type for c in flat(tokens) if c.type not in blocks} <= SAFE_INLINE | {"inline"}
