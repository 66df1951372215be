"""The upgrade texts as GitHub renders them (CommonMark with tables, parsed by markdown-it-py): the
``/upgrade`` help row, the plan and the tracking issue, with hostile names from the repository."""

from __future__ import annotations

import re
from datetime import date

from markdown_it.token import Token

from bot.domain.escape import ZERO_WIDTH
from bot.domain.help import HELP
from bot.domain.upgrades.campaign import Say, decide, dump_state, load_state, opened, start
from bot.domain.upgrades.markdown import plan_markdown
from bot.domain.upgrades.plan import AddonFact, ClusterFacts, ObjectFact, UpgradeSettings, plan_upgrade
from bot.domain.upgrades.tracking import body, tracked
from bot.domain.validate.eks import EksCatalog
from tests.output.markdown import MD, flat
from tests.upgrades.test_campaign import facts

# What a repository can hold where a name goes: HTML, a comment end, a mention, a table pipe,
# backticks, emphasis and link syntax.
HOSTILE = "shop-a --><img src=x onerror=alert(1)> @example-org/sre | `x` *y* [z](https://evil.example)"
ENV = "prod <b>|</b> @team"
TODAY = date(2026, 12, 3)
OURS = re.compile(
    r"^((<details( open)?>)?(<summary>[^<>]*</summary>)?|</details>|<!-- gitops-bot:[^<>]* -->)$"
)


def hostile_plan() -> object:
    cluster = ClusterFacts(
        HOSTILE,
        ENV,
        "us-east-1",
        (1, 33),
        f"clusters/{HOSTILE}/cluster.yaml",
        8,
        addons=(AddonFact("kube-proxy", "v1.33.0-eksbuild.1", "clusters/a|b/addons.yaml", 3),),
        objects=(ObjectFact("batch/v1beta1", "CronJob", HOSTILE, "apps/x|y/job.yaml", 4),),
    )
    settings = UpgradeSettings(traffic_steps=(10, 50, 100), traffic_files=("dns/a|b.yaml",))
    return plan_upgrade(
        cluster, EksCatalog.bundled(), TODAY, to=(1, 35), strategy="blue-green", settings=settings
    )


def tokens(text: str) -> list[Token]:
    return flat(MD.parse(text))


def assert_inert(text: str) -> None:
    """Nothing from the repository became HTML, a link or a live mention."""
    found = tokens(text)
    for t in found:
        if t.type in ("html_block", "html_inline"):
            for line in filter(None, (x.strip() for x in t.content.splitlines())):
                assert OURS.match(line), line
        assert t.type != "link_open", t
        if t.type == "text":
            # the one mention: who started the campaign
            assert not re.search(r"(?<![A-Za-z0-9])@(?!bob:)[A-Za-z]", t.content), t.content
    rendered = MD.render(text)
    assert "<img" not in rendered and "<b>" not in rendered and 'href="' not in rendered


def rows(text: str) -> list[list[str]]:
    """Every table row as its cells' text (inline content)."""
    out: list[list[str]] = []
    inside = False
    for t in MD.parse(text):
        if t.type in ("tr_open", "tr_close"):
            inside = t.type == "tr_open"
            if inside:
                out.append([])
        elif t.type == "inline" and inside:
            out[-1].append(t.content)
    return out


def test_the_upgrade_help_row_is_one_row_of_two_cells() -> None:
    html = MD.render(HELP)
    assert "<code>/upgrade &lt;cluster&gt; [to &lt;version&gt;] [in-place|blue-green]</code>" in html
    row = next(r for r in rows(HELP) if r and "/upgrade" in r[0])
    assert len(row) == 2 and row[1].startswith("Start (or resume) the upgrade of a cluster")
    assert "<details open><summary>gitops-bot commands</summary>" in html


def test_the_plan_renders_with_hostile_names() -> None:
    plan = hostile_plan()
    md = plan_markdown(plan)  # type: ignore[arg-type]
    assert_inert(md)
    table = rows(md)
    widths = {len(r) for r in table[:2]}  # the add-on table: header and one row
    assert widths == {4}, table
    removed = next(r for r in table if r and "CronJob" in r[0])
    assert len(removed) == 5 and removed[4] == "`apps/x|y/job.yaml:4`"  # the pipe split nothing
    # The step list stays one ordered list, a step per item.
    items = [t for t in MD.parse(md) if t.type == "list_item_open" and t.markup == "."]
    assert len(items) == len(plan.steps) == 8  # type: ignore[attr-defined]  # migration, create, smoke, 3 traffic, 2 decommission


def test_the_tracking_issue_renders_checklist_plan_and_hidden_state() -> None:
    plan = hostile_plan()
    c = start(plan)  # type: ignore[arg-type]
    c = opened(c, 12, "abc")
    text = body(HOSTILE, "1.35", plan_markdown(plan), c, started_by="bob")  # type: ignore[arg-type]
    assert_inert(text)
    # The checklist: a bullet list of GitHub task items, the current one marked.
    lists = [t for t in MD.parse(text) if t.type == "bullet_list_open"]
    assert lists, text
    tasks = [t.content for t in MD.parse(text) if t.type == "inline" and re.match(r"\[[ x]\] ", t.content)]
    assert len(tasks) == len(c.steps) and tasks[0].endswith("(#12) ← now")
    # The plan is in a collapsible block; the state and key markers are hidden and read back.
    assert "<details><summary>The plan</summary>" in text
    rendered = MD.render(text)
    assert "gitops-bot:upgrade-state" not in re.sub(r"<!--.*?-->", "", rendered, flags=re.S)
    assert load_state(text) == c
    issue = {"number": 3, "body": text, "state": "open", "user": {"login": "gitops-bot[bot]", "type": "Bot"}}
    [t] = tracked([issue], "gitops-bot[bot]")  # the key is percent-encoded: the name reads back whole
    assert t.cluster == HOSTILE and t.campaign == c


def test_what_the_campaign_says_is_inert() -> None:
    c = opened(start(hostile_plan()), 12, "abc")  # type: ignore[arg-type]
    _, actions = decide(c, facts(pr_state="merged"))
    said = [a.text for a in actions if isinstance(a, Say)]
    assert said and all(s.startswith("Step 1 merged: Create") for s in said)
    for text in said:
        assert_inert(text)
    assert ZERO_WIDTH in said[0]  # the mention in the name was broken
    marker = dump_state(c)
    assert "-->" not in marker[:-3] and "<img" not in marker
