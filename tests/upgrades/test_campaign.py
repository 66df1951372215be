"""The campaign state machine, step by step: blue/green with a red traffic step and its rollback, in place."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.upgrades.campaign import (
    Campaign,
    Facts,
    OpenRegistryPR,
    OpenRollbackPR,
    OpenStepPR,
    Say,
    checklist,
    decide,
    dump_state,
    load_state,
    opened,
    resume,
    start,
    watched,
)
from bot.domain.upgrades.plan import ClusterFacts, UpgradeSettings, plan_upgrade
from bot.domain.validate.eks import EksCatalog

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SOAK = timedelta(minutes=30)
BLUE = ClusterFacts("shop-a", "prod", "us-east-1", (1, 33), "clusters/prod/shop-a/cluster.yaml", 8)


def blue_green() -> Campaign:
    settings = UpgradeSettings(traffic_steps=(10, 50, 100), traffic_files=("dns/shop.yaml",))
    plan = plan_upgrade(
        BLUE, EksCatalog.bundled(), T0.date(), to=(1, 35), strategy="blue-green", settings=settings
    )
    return start(plan)


def facts(**kw: object) -> Facts:
    base: dict[str, object] = {"now": T0, "soak": SOAK}
    base.update(kw)
    return Facts(**base)  # type: ignore[arg-type]


def kinds(actions: list[object]) -> list[str]:
    return [type(a).__name__ for a in actions]


def test_start_lists_the_plan_steps() -> None:
    c = blue_green()
    assert (c.cluster, c.green, c.target, c.phase) == ("shop-a", "shop-b", "1.35", "pending")
    assert [s.kind for s in c.steps] == [
        "create-green",
        "smoke",
        "traffic",
        "traffic",
        "traffic",
        "decommission-workloads",
        "decommission-cluster",
    ]


def test_pending_opens_the_step_pr_and_asks_again_the_same() -> None:
    c = blue_green()
    first = decide(c, facts())
    assert first == decide(c, facts())  # a redelivery gets the same answer
    assert first[1] == [OpenStepPR(c.steps[0], 0)]


def test_whole_blue_green_campaign_with_a_red_step_rolled_back_and_retried() -> None:
    c = blue_green()
    now = T0
    green_healthy = {"shop-a": "green", "shop-b": "green"}
    # create green: PR opened, merged, soaked
    c = opened(c, 11, "sha-create")
    c, actions = decide(c, facts(pr_state="merged", pr_merged_at=now))
    assert c.phase == "soaking" and kinds(actions) == ["Say"]
    c, actions = decide(c, facts(now=now + SOAK / 2, health=green_healthy))
    assert c.phase == "soaking" and actions == []  # still soaking
    c, actions = decide(c, facts(now=now + SOAK, health=green_healthy))
    assert c.phase == "smoke" and c.current == 1
    # smoke: waits for green's health and the smoke signal
    c, actions = decide(c, facts(now=now + SOAK, health=green_healthy, smoke="pending"))
    assert actions == []
    c, actions = decide(c, facts(now=now + SOAK, health=green_healthy, smoke="success"))
    assert (c.current, c.phase) == (2, "pending") and kinds(actions) == ["Say", "OpenStepPR"]
    # traffic 10%: merged, soaked healthy
    c = opened(c, 12, "sha-10")
    c, _ = decide(c, facts(pr_state="merged", pr_merged_at=now))
    c, actions = decide(c, facts(now=now + SOAK, health=green_healthy))
    assert (c.current, c.good_weight) == (3, 10)
    # traffic 50%: green turns red while soaking: roll back to 10 and pause
    c = opened(c, 13, "sha-50")
    c, _ = decide(c, facts(pr_state="merged", pr_merged_at=now))
    c, actions = decide(c, facts(now=now + SOAK / 3, health={"shop-a": "green", "shop-b": "red"}))
    assert c.phase == "rolling-back"
    assert actions == [
        OpenRollbackPR(10, "shop-b turned red during step 4 (Shift traffic: shop-b 50%, shop-a 50%)")
    ]
    c, actions = decide(c, facts(rollback_state="merged"))
    assert c.phase == "paused" and kinds(actions) == ["Say"]
    assert decide(c, facts(health=green_healthy)) == (c, [])  # paused stays paused
    # /upgrade retries the 50% step
    c, actions = resume(c)
    assert (c.current, c.phase) == (3, "pending") and kinds(actions) == ["Say", "OpenStepPR"]
    for pr, step in ((14, 3), (15, 4), (16, 5), (17, 6)):
        c = opened(c, pr, f"sha-{pr}")
        c, _ = decide(c, facts(pr_state="merged", pr_merged_at=now))
        c, actions = decide(c, facts(now=now + SOAK, health=green_healthy))
        assert c.current == step + 1
    assert c.phase == "done" and c.good_weight == 100
    assert isinstance(actions[-2], Say) and "complete" in actions[-2].text
    assert actions[-1] == OpenRegistryPR()  # blue/green: main's registry follows green


def test_failed_smoke_pauses_before_any_traffic_moves() -> None:
    c = replace(blue_green(), current=1, phase="smoke")
    c, actions = decide(c, facts(health={"shop-b": "green"}, smoke="failure"))
    assert c.phase == "paused" and "smoke signal failed" in c.reason
    assert kinds(actions) == ["Say"]


def test_a_retried_smoke_step_waits_past_the_failure_it_paused_on() -> None:
    c = replace(blue_green(), current=1, phase="smoke")
    green = {"shop-a": "green", "shop-b": "green"}
    c, _ = decide(c, facts(health=green, smoke="failure", smoke_id="status:5,check:0"))
    assert c.phase == "paused" and c.paused_on == "status:5,check:0"
    c, actions = resume(c)
    assert c.phase == "smoke" and "new smoke signal" in actions[0].text  # type: ignore[union-attr]
    # the same failure is still on the commit: the retry waits instead of pausing again
    assert decide(c, facts(health=green, smoke="failure", smoke_id="status:5,check:0")) == (c, [])
    # a new verdict counts, whichever it is
    failed, _ = decide(c, facts(health=green, smoke="failure", smoke_id="status:7,check:0"))
    assert failed.phase == "paused" and failed.paused_on == "status:7,check:0"
    passed, actions = decide(c, facts(health=green, smoke="success", smoke_id="status:6,check:0"))
    assert passed.phase == "pending" and passed.paused_on == "" and kinds(actions) == ["Say", "OpenStepPR"]
    assert load_state(dump_state(c)) == c


def test_failed_smoke_during_a_traffic_step_rolls_back_to_the_last_good_weight() -> None:
    """Green's smoke tests run again while it takes traffic: a failure there is a rollback, even
    with both clusters' health green, and whatever the soak or a hold says."""
    c = replace(blue_green(), current=3, phase="soaking", merged_at=T0.isoformat(), pr=13, good_weight=10)
    healthy = {"shop-a": "green", "shop-b": "green"}
    assert decide(c, facts(now=T0 + SOAK, health=healthy, smoke="pending"))[0].current == 4
    for held in (False, True):
        rolled, actions = decide(c, facts(now=T0 + SOAK / 3, health=healthy, smoke="failure", held=held))
        assert rolled.phase == "rolling-back"
        assert actions == [
            OpenRollbackPR(
                10, "shop-b's smoke signal failed during step 4 (Shift traffic: shop-b 50%, shop-a 50%)"
            )
        ]
    # Outside a traffic step a failed smoke signal moves nothing back (there are no weights).
    create = replace(c, current=0, good_weight=0)
    assert decide(create, facts(now=T0 + SOAK, health={"shop-b": "green"}, smoke="failure"))[0].current == 1


def test_hold_stops_the_advance_but_not_a_rollback() -> None:
    c = replace(blue_green(), current=2, phase="soaking", merged_at=T0.isoformat(), pr=12)
    healthy = {"shop-a": "green", "shop-b": "green"}
    assert decide(c, facts(now=T0 + SOAK, health=healthy, held=True)) == (c, [])
    red = decide(c, facts(now=T0 + SOAK, health={"shop-a": "red", "shop-b": "green"}, held=True))
    assert red[0].phase == "rolling-back"


def test_a_closed_step_pr_pauses_and_a_missing_or_foreign_one_is_opened_again() -> None:
    c = opened(blue_green(), 11, "sha")
    assert decide(c, facts(pr_state="closed"))[0].phase == "paused"
    again, actions = decide(c, facts(pr_state="open", pr_by_bot=False))
    assert again.phase == "pending" and actions == [OpenStepPR(c.steps[0], 0)]


@pytest.mark.parametrize(
    ("index", "clusters"),
    [
        (0, ("shop-b",)),
        (1, ("shop-b",)),
        (2, ("shop-a", "shop-b")),
        (5, ("shop-a", "shop-b")),
        (6, ("shop-b",)),
    ],
)
def test_watched_clusters_per_step(index: int, clusters: tuple[str, ...]) -> None:
    assert watched(replace(blue_green(), current=index)) == clusters


def test_in_place_three_hops() -> None:
    facts_ = replace(BLUE, version=(1, 32))
    c = start(plan_upgrade(facts_, EksCatalog.bundled(), T0.date(), to=(1, 35)))
    assert [s.version for s in c.steps] == ["1.33", "1.34", "1.35"]
    for i in range(3):
        c, actions = decide(c, facts())
        assert actions == [OpenStepPR(c.steps[i], i)]
        c = opened(c, 20 + i, f"sha{i}")
        c, _ = decide(c, facts(pr_state="merged", pr_merged_at=T0))
        c, actions = decide(c, facts(now=T0 + SOAK, health={"shop-a": "green"}))
    assert c.phase == "done"


def test_state_round_trips_through_the_marker_and_rejects_garbage() -> None:
    c = opened(blue_green(), 11, "abc")
    text = f"## Upgrade\n\n{checklist(c)}\n\n{dump_state(c)}\n"
    assert load_state(text) == c
    assert load_state("no marker") is None
    assert load_state('<!-- gitops-bot:upgrade-state {"cluster": 1} -->') is None
    assert "- [ ] Create shop-b at 1.35 beside shop-a, with traffic weight 0 (#11) ← now" in checklist(c)
