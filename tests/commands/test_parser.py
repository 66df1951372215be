"""Table-driven tests of the slash-command parser: command, reply or ignore."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.commands import (
    MAX_BODY_CHARS,
    MAX_LINE_CHARS,
    MAX_REASON_CHARS,
    Command,
    Ignore,
    Reply,
    code,
    escape_text,
    parse_comment,
)
from bot.domain.help import ALL_COMMANDS, COMMANDS, HELP

BOT = "gitops-bot[bot]"

# (id, body, expected name, expected args); expected name None means Ignore
COMMAND_CASES: list[tuple[str, str, str | None, tuple[str, ...]]] = [
    ("diff", "/diff", "diff", ()),
    ("validate", "/validate", "validate", ()),
    ("promote-env", "/promote staging", "promote", ("staging",)),
    ("promote-next", "/promote", "promote", ()),
    ("hold-no-reason", "/hold", "hold", ()),
    ("hold-reason", "/hold waiting for the CAB", "hold", ("waiting for the CAB",)),
    ("hold-reason-spaces", "/hold   two   spaces\t tab ", "hold", ("two spaces tab",)),
    ("unhold", "/unhold", "unhold", ()),
    ("rollback", "/rollback", "rollback", ()),
    ("rollback-reason", "/rollback nodes not ready", "rollback", ("nodes not ready",)),
    ("help", "/help", "help", ()),
    ("help-with-words", "/help me please", "help", ()),
    ("upper-case", "/PROMOTE prod", "promote", ("prod",)),
    ("mixed-case", "/Hold", "hold", ()),
    ("trailing-space", "/diff   ", "diff", ()),
    ("crlf", "LGTM\r\n/validate\r\n", "validate", ()),
    ("up-to-3-spaces", "   /diff", "diff", ()),
    ("after-prose", "Looks good.\n\n/promote staging\nthanks", "promote", ("staging",)),
    ("first-of-two", "/hold first\n/unhold", "hold", ("first",)),
    ("bot-mention", "@gitops-bot /diff", "diff", ()),
    ("bot-mention-colon", "@GitOps-Bot: /diff", "diff", ()),
    ("bot-mention-full-login", "@gitops-bot[bot] /validate", "validate", ()),
    ("nbsp", "/promote\u00a0staging", "promote", ("staging",)),
    ("zero-width", "\u200b/diff", "diff", ()),
    ("after-fence", "```\n/hold\n```\n/diff", "diff", ()),
    ("after-tilde-fence", "~~~yaml\n/hold\n~~~\n/validate", "validate", ()),
    ("long-fence-short-close", "````\n```\n/hold\n````\n/diff", "diff", ()),
    ("after-html-comment", "<!-- /hold -->\n/diff", "diff", ()),
    ("after-pre", "<pre>\n/hold\n</pre>\n/validate", "validate", ()),
    ("mention-in-reason", "/hold ask @alice", "hold", ("ask @alice",)),
    ("html-in-reason", "/hold <b>bold</b>", "hold", ("<b>bold</b>",)),
    # ignored
    ("empty", "", None, ()),
    ("prose", "please promote this", None, ()),
    ("fenced", "```\n/promote prod\n```", None, ()),
    ("fenced-unclosed", "```\n/promote prod", None, ()),
    ("fenced-tilde", "~~~\n/hold\n~~~", None, ()),
    ("indented-code", "    /promote prod", None, ()),
    ("tab-code", "\t/promote prod", None, ()),
    ("quote", "> /promote prod", None, ()),
    ("quote-indented", "  > /hold", None, ()),
    ("nested-quote", ">> /hold", None, ()),
    ("inline-code", "run `/promote prod` after lunch", None, ()),
    ("inline-code-at-start", "`/promote prod`", None, ()),
    ("html-comment", "<!-- /promote prod -->", None, ()),
    ("html-comment-multiline", "<!--\n/promote prod\n-->", None, ()),
    ("html-comment-unclosed", "<!--\n/promote prod", None, ()),
    ("pre-block", "<pre>\n/promote prod\n</pre>", None, ()),
    ("html-wrapped", "<b>/promote prod</b>", None, ()),
    ("mid-line", "I will /promote prod later", None, ()),
    ("list-item", "- /promote prod", None, ()),
    ("other-mention", "@alice /promote prod", None, ()),
    ("path", "/clusters/dev/payments.yaml looks wrong", None, ()),
    ("slash-only", "/ promote", None, ()),
    ("url", "https://example.com/diff", None, ()),
    ("digit-name", "/123", None, ()),
    # hidden in markup GitHub does not show (CommonMark: what is rendered is what counts)
    ("link-reference-destination", "LGTM\n\n[ref]:\n/promote", None, ()),
    ("link-reference-title", '[ref]: https://x.test\n"\n/promote prod\n"', None, ()),
    ("link-reference-title-parens", "[ref]: /x\n(\n/hold\n)", None, ()),
    ("html-attribute", 'ok <img src="a.png" alt="\n/promote prod\n"> done', None, ()),
    ("html-block", "<div>\n/promote prod\n</div>", None, ()),
    ("heading", "# /promote prod", None, ()),
    ("table-cell", "| a |\n| - |\n| /promote prod |", None, ()),
    ("escaped-slash-shows-command", "\\/diff", "diff", ()),
    ("after-link-reference", "[ref]: https://x.test\n/diff", "diff", ()),
]


@pytest.mark.parametrize(
    ("body", "name", "args"), [c[1:] for c in COMMAND_CASES], ids=[c[0] for c in COMMAND_CASES]
)
def test_commands_and_ignores(body: str, name: str | None, args: tuple[str, ...]) -> None:
    outcome = parse_comment(body, sender_login="alice", bot_login=BOT)
    if name is None:
        assert isinstance(outcome, Ignore), outcome
    else:
        assert isinstance(outcome, Command), outcome
        assert (outcome.name, outcome.args) == (name, args)
        assert outcome.raw.lower().startswith(f"/{name}")


# (id, body, a fragment the reply must contain)
REPLY_CASES: list[tuple[str, str, str]] = [
    ("unknown", "/deploy now", "I don't know the command `/deploy`"),
    ("unknown-gets-help", "/shipit", "| `/promote [env]` |"),
    ("diff-args", "/diff staging", "`/diff` takes no arguments"),
    ("unhold-args", "/unhold now", "`/unhold` takes no arguments"),
    ("promote-two-envs", "/promote staging prod", "one environment name at most"),
    ("promote-bad-env", "/promote ../../etc", "is not an environment name"),
    ("promote-html-env", "/promote <img>", "`<img>` is not an environment name"),
]


@pytest.mark.parametrize(("body", "fragment"), [c[1:] for c in REPLY_CASES], ids=[c[0] for c in REPLY_CASES])
def test_usage_errors_reply(body: str, fragment: str) -> None:
    outcome = parse_comment(body, sender_login="alice", bot_login=BOT)
    assert isinstance(outcome, Reply), outcome
    assert fragment in outcome.text
    assert outcome.raw == body


@pytest.mark.parametrize(
    ("login", "kind"),
    [
        ("gitops-bot[bot]", "Bot"),
        ("GitOps-Bot[bot]", "User"),
        ("renovate[bot]", "Bot"),
        ("dependabot", "bot"),
    ],
)
def test_bot_comments_are_ignored(login: str, kind: str) -> None:
    outcome = parse_comment("/promote prod", sender_login=login, sender_type=kind, bot_login=BOT)
    assert outcome == Ignore("comment from a bot")


def test_only_enabled_commands_run() -> None:
    enabled = ["diff", "hold"]
    assert isinstance(parse_comment("/diff", enabled=enabled), Command)
    refused = parse_comment("/promote prod", enabled=enabled)
    assert isinstance(refused, Reply)
    assert "turned off" in refused.text
    assert parse_comment("/help", enabled=[]) == Command("help", (), "/help")


def test_long_input_is_bounded() -> None:
    assert isinstance(parse_comment("x" * (MAX_BODY_CHARS + 10) + "\n/diff"), Ignore)
    assert parse_comment("a\n" * 1000 + "/diff") == Command("diff", (), "/diff")
    too_long = parse_comment("/hold " + "y" * MAX_LINE_CHARS)
    assert isinstance(too_long, Reply)
    assert "limit" in too_long.text
    assert len(too_long.raw) < 50, "an over-long line is not quoted back in full"
    cut = parse_comment("/hold " + "z" * (MAX_REASON_CHARS + 50))
    assert isinstance(cut, Command)
    assert len(cut.args[0]) == MAX_REASON_CHARS
    assert cut.args[0].endswith("…")


def test_many_fences_before_the_command() -> None:
    assert parse_comment("```\n/hold\n```\n" * 100 + "/validate") == Command("validate", (), "/validate")


def test_help_lists_every_command() -> None:
    assert set(ALL_COMMANDS) == set(COMMANDS)
    for spec in COMMANDS.values():
        assert "`" + spec.syntax.replace("|", "\\|") + "`" in HELP  # a "|" escaped inside the table
    assert HELP.count("\n| `/") == len(COMMANDS)


@pytest.mark.parametrize("text", ["/hold", "/hold `x`", "`a`", "/hold ``` ` ``"])
def test_code_cannot_be_broken_out_of(text: str) -> None:
    out = code(text)
    fence = len(out) - len(out.lstrip("`"))
    assert out.endswith("`" * fence)
    assert "`" * fence not in out[fence:-fence]
    assert out[fence:-fence].strip() == text


def test_escape_text_defuses_html_mentions_and_links() -> None:
    out = escape_text("ping @alice <script>x</script> [click](https://evil) **bold**")
    assert "<script>" not in out
    assert "&lt;script&gt;" in out
    assert "@alice" not in out
    assert "](" not in out
    assert "**" not in out


@given(st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_any_text_gives_exactly_one_outcome(body: str) -> None:
    outcome = parse_comment(body, sender_login="alice")
    assert isinstance(outcome, Command | Reply | Ignore)
    if isinstance(outcome, Command):
        assert outcome.name in COMMANDS


@given(st.text(alphabet=st.characters(blacklist_characters="`~"), max_size=200))
@settings(max_examples=200, deadline=None)
def test_nothing_inside_a_fence_is_a_command(inner: str) -> None:
    body = "```\n" + inner.replace("\r", "") + "\n```"
    assert isinstance(parse_comment(body, sender_login="alice"), Ignore)
