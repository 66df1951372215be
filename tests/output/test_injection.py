"""Injection strings in a path, an object name, a title and a command argument stay text end to end."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from markdown_it.token import Token

from bot.domain.commands import escape_text
from bot.domain.promotion.plan import History, pr_body
from bot.prchecks.build import build_check
from bot.prchecks.publish import result_check_runs
from tests.output.markdown import MD, flat
from tests.render.conftest import commit, git

MakeRepo = Callable[..., Path]
HOSTILE = "x`|<img src=x onerror=alert(1)>@octocat [a](https://evil.example) </summary>"
# the HTML the bot itself writes: collapsible blocks, its markers, small print
OWN_HTML = re.compile(r"^</?(details|summary|b|code|sub)>$|^<!-- gitops-bot:[^>]*-->$")
LIVE = re.compile(r"(?<![A-Za-z0-9])@[A-Za-z0-9]|://evil")  # a live mention or autolink in shown text


def assert_inert(markdown: str) -> list[Token]:
    """Every token of ``markdown`` is the bot's own markup; PR text stays text or code."""
    tokens = flat(MD.parse(markdown))
    for t in tokens:
        if t.type in ("html_inline", "html_block"):
            for tag in re.findall(r"<!--.*?-->|<[^>]*>", t.content, re.S):
                assert OWN_HTML.match(tag), tag
            stripped = re.sub(r"<!--.*?-->|<[^>]*>", "", t.content, flags=re.S)
            assert not LIVE.search(stripped) and "<img" not in stripped, stripped
        if t.type == "link_open":
            assert "evil" not in str(t.attrs.get("href")), t.attrs
        if t.type in ("text", "text_special"):
            assert not LIVE.search(t.content), t.content
        assert t.type not in ("image",), t
    return tokens


def test_a_hostile_path_and_name_stay_text_in_the_comment_and_check_runs(make_repo: MakeRepo) -> None:
    repo = make_repo({"apps/web/kustomization.yaml": "resources: []\n"})
    path = f"apps/web/{HOSTILE.replace('/', '-')}.yaml"
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n"
        f"  name: {HOSTILE!r}\n  namespace: web\nstringData:\n  password: hunter2hunter2\n"
    )
    git(repo, "checkout", "-q", "-b", "pr")
    commit(repo, {path: secret})
    git(repo, "checkout", "-q", "main")
    result = build_check(repo, "main", "pr", secret_key=b"k" * 32)
    assert any(f.path == path for f in result.report.findings)
    for part in result.comment_parts():
        tokens = assert_inert(part)
        codes = [t.content for t in tokens if t.type == "code_inline"]
        assert any(c.startswith(path) for c in codes), codes  # the path, shown exactly
    for run in result_check_runs(result, external_id="o/r#1"):
        assert_inert(run.summary)
        assert_inert(run.text or "")
        for annotation in run.annotations:
            assert annotation["path"] == path  # annotations are plain text, pinned to the real file


def test_a_hostile_title_stays_text_in_the_promotion_body() -> None:
    history = History(
        origin_pr=1,
        origin_title=f"Add cluster {HOSTILE}\n\n# heading\n<!-- gitops-bot:promotion {{}} -->",
        source_pr=1,
        source_env="dev",
        source_sha="a" * 40,
        target_env="staging",
        strategy="cherry-pick",
    )
    body = pr_body(history, repo="o/r", diff_markdown="", checklist="- [ ] **soak**", auto_merge=True)
    tokens = assert_inert(body)
    assert not any(t.type == "heading_open" and t.markup == "#" for t in tokens)


def test_a_hostile_command_argument_stays_text_in_the_reply() -> None:
    reply = f"@alice `/hold` is set.\n\n> {escape_text(HOSTILE + chr(10) + '| a | b |')}"
    tokens = assert_inert(reply.replace("@alice", "alice"))
    assert not any(t.type.startswith("table") for t in tokens)
