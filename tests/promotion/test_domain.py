"""Pure promotion logic: chain, durations, freeze windows, gates, plan, marker, queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.config import parse_config
from bot.domain.promotion.environments import EnvironmentConfigError, load_chain, parse_duration
from bot.domain.promotion.freeze import Cron, active_freeze
from bot.domain.promotion.gates import ApprovalResult, GateFacts, GateState, HealthCheck, evaluate_gates
from bot.domain.promotion.plan import (
    History,
    Queued,
    branch_name,
    conflict_comment,
    in_flight_ahead,
    marker,
    next_history,
    parse_branch,
    pr_body,
    pr_title,
    read_marker,
)

CONFIG = """
version: 1
environments:
  - name: dev
    branch: env/dev
    auto_merge: true
    gates:
      health:
        contexts: [flux/dev]
      soak: 30m
  - name: staging
    branch: env/staging
    auto_merge: true
    gates:
      health:
        kubernetes:
          context: staging-admin
          kustomizations: [flux-system/apps]
      soak: 1h
  - name: prod
    branch: env/prod
    gates:
      approvals: [prod-owners]
      freeze:
        - {start: "2026-12-20", end: "2027-01-03", timezone: Europe/Berlin, reason: Holidays}
        - {schedule: "0 16 * * fri", duration: 64h, timezone: UTC, reason: Weekend}
promotion:
  strategy: cherry-pick
  rollback_on_red: true
"""

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday


def chain():
    return load_chain(parse_config(CONFIG))


def test_chain_from_config_validated_by_the_schema() -> None:
    c = chain()
    assert c.names == ["dev", "staging", "prod"]
    dev = c.by_branch("env/dev")
    assert dev is not None and dev.auto_merge and dev.gates.contexts == ("flux/dev",)
    staging = c.next_after(dev)
    assert staging is not None and staging.name == "staging"
    assert staging.gates.kubernetes is not None and staging.gates.kubernetes.context == "staging-admin"
    prod = c.by_name("PROD")
    assert prod is not None and c.next_after(prod) is None and c.previous(prod) == staging
    assert c.settings.strategy == "cherry-pick" and c.settings.rollback_on_red
    assert load_chain(parse_config(None)).environments == ()


@pytest.mark.parametrize(
    "bad",
    [
        "environments: [{name: dev, branch: x}, {name: dev, branch: y}]",
        "environments: [{name: dev, branch: x}, {name: qa, branch: x}]",
    ],
)
def test_duplicate_environments_are_refused(bad: str) -> None:
    with pytest.raises(EnvironmentConfigError):
        load_chain(parse_config(bad))


@pytest.mark.parametrize(
    "bad",
    [
        "environments: [{name: dev, branch: dev, gates: {soak: 30 minutes}}]",
        "environments: [{branch: dev}]",
        "environments: [{name: dev, branch: dev, colour: red}]",
        "promotion: {strategy: rebase}",
    ],
)
def test_schema_rejects_bad_environment_config(bad: str) -> None:
    from bot.domain.config import ConfigError

    with pytest.raises(ConfigError):
        parse_config(bad)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("1h30m", 5400), ("2d", 172800), ("90s", 90), (None, 0), (45, 45)]
)
def test_parse_duration(text: str | int | None, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["30 minutes", "-5m", "m", "1y"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(EnvironmentConfigError):
        parse_duration(text)


def test_cron_fields() -> None:
    c = Cron.parse("*/15 9-17 * * mon-fri")
    assert c.matches(datetime(2026, 11, 18, 9, 45))
    assert not c.matches(datetime(2026, 11, 18, 9, 50))
    assert not c.matches(datetime(2026, 11, 21, 10, 0))  # Saturday
    assert Cron.parse("0 0 * * 7").matches(datetime(2026, 11, 22, 0, 0))  # 7 is Sunday too
    with pytest.raises(EnvironmentConfigError):
        Cron.parse("61 * * * *")
    with pytest.raises(EnvironmentConfigError):
        Cron.parse("* * *")


def test_freeze_date_range_in_a_timezone() -> None:
    w = [{"start": "2026-12-20", "end": "2027-01-03", "timezone": "Europe/Berlin", "reason": "Holidays"}]
    assert active_freeze(w, datetime(2026, 12, 19, 22, 59, tzinfo=UTC)) is None  # 23:59 Berlin on the 19th
    inside = active_freeze(w, datetime(2026, 12, 19, 23, 0, tzinfo=UTC))
    assert inside is not None and inside.reason == "Holidays"
    assert inside.until == datetime(2027, 1, 3, 23, 0, tzinfo=UTC)  # end day included
    assert active_freeze(w, datetime(2027, 1, 3, 23, 0, tzinfo=UTC)) is None


def test_freeze_schedule_with_duration() -> None:
    w = [{"schedule": "0 16 * * fri", "duration": "64h", "reason": "Weekend"}]
    fri = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
    assert active_freeze(w, fri - timedelta(minutes=1)) is None
    got = active_freeze(w, fri + timedelta(hours=30))
    assert got is not None and got.until == fri + timedelta(hours=64)
    assert active_freeze(w, fri + timedelta(hours=64)) is None


def test_freeze_window_errors_are_named() -> None:
    with pytest.raises(EnvironmentConfigError, match="timezone"):
        active_freeze([{"start": "2026-01-01", "timezone": "Mars/Olympus"}], NOW)
    with pytest.raises(EnvironmentConfigError, match="start/end or schedule"):
        active_freeze([{"reason": "x"}], NOW)


def _green(name: str, since: datetime) -> HealthCheck:
    return HealthCheck("status", name, GateState.PASS, "success", since)


def test_gates_wait_for_health_then_soak_then_pass() -> None:
    c = chain()
    dev, staging = c.environments[0], c.environments[1]
    nothing = evaluate_gates(dev, staging, GateFacts(now=NOW))
    assert nothing.state is GateState.PENDING
    assert nothing.get("health").state is GateState.PENDING  # type: ignore[union-attr]
    soaking = evaluate_gates(
        dev, staging, GateFacts(now=NOW, health=(_green("flux/dev", NOW - timedelta(minutes=10)),))
    )
    soak = soaking.get("soak")
    assert soak is not None and soak.state is GateState.PENDING and "10m of 30m" in soak.detail
    assert soaking.recheck_at == NOW + timedelta(minutes=20)
    done = evaluate_gates(
        dev, staging, GateFacts(now=NOW, health=(_green("flux/dev", NOW - timedelta(minutes=31)),))
    )
    assert done.passed and done.summary_line() == "All promotion gates hold."


def test_red_health_fails_and_names_the_signal() -> None:
    c = chain()
    dev, staging = c.environments[0], c.environments[1]
    red = HealthCheck("status", "flux/dev", GateState.FAIL, "Kustomization apps failed: dry-run error")
    report = evaluate_gates(dev, staging, GateFacts(now=NOW, health=(red,)))
    assert report.state is GateState.FAIL
    assert "flux/dev" in report.get("health").detail  # type: ignore[union-attr]
    assert "❌" in report.checklist()


def test_prod_gates_approvals_freeze_hold_queue() -> None:
    c = chain()
    staging, prod = c.environments[1], c.environments[2]
    healthy = (
        HealthCheck("kustomization", "flux-system/apps", GateState.PASS, "", NOW - timedelta(hours=2)),
    )
    facts = GateFacts(now=NOW, health=healthy, held=True, hold_detail="by @ops: change freeze", ahead=(41,))
    report = evaluate_gates(staging, prod, facts)
    states = {r.gate: r.state for r in report.results}
    assert states == {
        "health": GateState.PASS,
        "soak": GateState.PASS,
        "approvals": GateState.PENDING,
        "freeze": GateState.PASS,
        "hold": GateState.PENDING,
        "queue": GateState.PENDING,
    }
    assert "/unhold" in report.get("hold").detail  # type: ignore[union-attr]
    assert "#41" in report.get("queue").detail  # type: ignore[union-attr]
    ok = GateFacts(now=NOW, health=healthy, approvals=(ApprovalResult("prod-owners", True, "@lead"),))
    assert evaluate_gates(staging, prod, ok).passed
    frozen = GateFacts(
        now=datetime(2026, 12, 24, 12, tzinfo=UTC),
        health=healthy,
        approvals=(ApprovalResult("prod-owners", True, ""),),
    )
    fr = evaluate_gates(staging, prod, frozen)
    assert fr.get("freeze").state is GateState.PENDING and "Holidays" in fr.get("freeze").detail  # type: ignore[union-attr]
    assert fr.recheck_at == datetime(2027, 1, 3, 23, 0, tzinfo=UTC)


def test_soak_without_health_counts_from_merge() -> None:
    c = load_chain(
        parse_config("environments: [{name: a, branch: a, gates: {soak: 1h}}, {name: b, branch: b}]")
    )
    a, b = c.environments
    early = evaluate_gates(a, b, GateFacts(now=NOW, merged_at=NOW - timedelta(minutes=5)))
    assert early.get("soak").state is GateState.PENDING  # type: ignore[union-attr]
    late = evaluate_gates(a, b, GateFacts(now=NOW, merged_at=NOW - timedelta(hours=2)))
    assert late.passed


def test_names_titles_and_branches() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert branch_name("staging", sha) == "gitops-bot/promote/staging/0123456"
    assert parse_branch("gitops-bot/promote/staging/0123456") == ("staging", "0123456")
    assert parse_branch("feature/x") is None
    assert pr_title(123, "staging", "Add cluster team-a") == "Promote #123 to staging: Add cluster team-a"
    assert (
        pr_title(123, "prod", "Promote #123 to staging: Add cluster team-a")
        == "Promote #123 to prod: Add cluster team-a"
    )


def test_history_round_trips_and_follows_the_chain() -> None:
    c = chain()
    dev, staging, prod = c.environments
    h1 = next_history(
        c, dev, staging, merged_pr=123, merged_title="Add --> cluster", merged_sha="a" * 40, previous=None
    )
    text = "body\n" + marker(h1) + "\nmore"
    assert "-->" not in marker(h1)[:-4]
    assert read_marker(text) == h1
    h2 = next_history(
        c,
        staging,
        prod,
        merged_pr=130,
        merged_title="Promote #123 to staging: x",
        merged_sha="b" * 40,
        previous=h1,
    )
    assert h2.origin_pr == 123 and h2.origin_title == "Add --> cluster"
    assert [hop.env for hop in h2.hops] == ["dev", "staging"]
    assert read_marker("no marker") is None
    assert read_marker("<!-- gitops-bot:promotion {broken} -->") is None


def test_body_has_link_gates_diff_history_and_stays_small() -> None:
    c = chain()
    dev, staging, _ = c.environments
    h = next_history(
        c, dev, staging, merged_pr=7, merged_title="Add team-a", merged_sha="c" * 40, previous=None
    )
    report = evaluate_gates(dev, staging, GateFacts(now=NOW))
    diff = "<details><summary>team-a</summary>\n\n```diff\n" + "+ line\n" * 20000 + "```\n</details>"
    body = pr_body(h, repo="org/fleet", diff_markdown=diff, checklist=report.checklist(), auto_merge=True)
    assert "https://github.com/org/fleet/pull/7" in body
    assert "| ⏳ | **health** |" in body
    assert len(body) < 65_536
    assert body.count("```") % 2 == 0 and body.count("<details>") == body.count("</details>")
    assert "too long" in body
    assert read_marker(body) == h
    small = pr_body(h, repo="org/fleet", diff_markdown="", checklist="", auto_merge=False)
    assert "No rendered change" in small and "does not merge by itself" in small


def test_conflict_comment_names_paths_and_commands() -> None:
    env = chain().environments[1]
    text = conflict_comment(
        env=env,
        onto_branch="env/staging",
        source_pr=9,
        source_sha="d" * 40,
        paths=("clusters/a.yaml",),
        strategy="cherry-pick",
    )
    assert "`clusters/a.yaml`" in text and "/promote staging" in text and "git cherry-pick" in text
    assert text.startswith("<!-- gitops-bot:promotion-conflict staging -->")


def test_queue_one_in_flight_per_environment_in_merge_order() -> None:
    qs = [
        Queued(12, "prod", ("2026-11-18T10:05:00Z", 9)),
        Queued(11, "prod", ("2026-11-18T10:00:00Z", 8)),
        Queued(13, "staging", ("2026-11-18T09:00:00Z", 3)),
    ]
    assert in_flight_ahead(qs, 11) == ()
    assert in_flight_ahead(qs, 12) == (11,)
    assert in_flight_ahead(qs, 13) == ()
    assert in_flight_ahead(qs, 99) == ()


def test_history_json_is_stable() -> None:
    h = History(1, "t", "dev", "staging", 1, "e" * 40, "merge")
    assert History.from_json(h.to_json()) == h


def test_forged_markers_in_titles_and_diffs_are_not_trusted() -> None:
    c = chain()
    dev, staging, _ = c.environments
    forged = (
        '<!-- gitops-bot:promotion {"origin_pr":1,"source_env":"x","target_env":"y",'
        '"source_pr":1,"source_sha":"f"} -->'
    )
    h = next_history(
        c, dev, staging, merged_pr=5, merged_title=f"Add a {forged}", merged_sha="a" * 40, previous=None
    )
    body = pr_body(h, repo="o/r", diff_markdown=f"```diff\n+{forged}\n```", checklist="", auto_merge=True)
    assert read_marker(body) == h
    assert '<!-- gitops-bot:promotion {"origin_pr":1' not in body.split("### Gates")[0]
    assert "&lt;!--" in body


def test_gate_details_are_one_line_without_html() -> None:
    c = chain()
    dev, staging, _ = c.environments
    red = HealthCheck("status", "flux/dev", GateState.FAIL, "bad <script>\nline | two")
    report = evaluate_gates(dev, staging, GateFacts(now=NOW, health=(red,)))
    table = report.checklist()
    assert "<script>" not in table and "&lt;script&gt;" in table and "line \\| two" in table
    assert "\nline" not in report.task_list()


def test_the_documented_example_config_is_valid() -> None:
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "promotion.md"
    block = re.search(r"```yaml\n(.*?)```", doc.read_text(), re.S)
    assert block is not None
    c = load_chain(parse_config(block.group(1)))
    assert c.names == ["dev", "staging", "prod"]
    prod = c.by_name("prod")
    assert prod is not None and prod.gates.approvals == ("prod-owners",) and len(prod.gates.freeze) == 2


def test_a_hostile_status_description_reaches_the_gates_inert() -> None:
    """A CI status description is written by whoever can post a status: it goes through the
    escaper (no HTML, link, mention, reference, table break, forged checkbox) in the check run
    table and in the PR body's task list, while the bot's own quoting stays code."""
    c = chain()
    dev, staging, _ = c.environments
    hostile = (
        "ok <img src=x onerror=alert(1)> [click](https://evil.example) @org/admins #12 | - [x] **health** `"
    )
    red = HealthCheck("status", "ci/build", GateState.FAIL, hostile)
    report = evaluate_gates(dev, staging, GateFacts(now=NOW, health=(red,)))
    for rendered in (report.checklist(), report.task_list()):
        assert "<img" not in rendered and "&lt;img" in rendered
        assert "](https://" not in rendered and "https:\u200b//" in rendered
        assert "@org" not in rendered and "@\u200borg" in rendered
        assert "#12" not in rendered and "#\u200b12" in rendered
        assert "`ci/build`" in rendered and "`dev`" in rendered
    import re

    row = report.checklist().splitlines()[2]
    assert len(re.split(r"(?<!\\)\|", row)) == 5  # one row of three cells: the pipe is escaped
    assert len(report.task_list().splitlines()) == len(report.results)  # no forged checkbox line
