"""Attacks of issue 13 (items 3, 7, 8, 9) played end to end: the simulator and the real bot.

The bot runs as ``create_app`` on a local port (webhook, SQLite store, worker, git mirror,
every handler), as in :mod:`tests.e2e.test_lifecycle`; each test is one attack and what the
bot must do about it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain.labels import HOLD_LABEL
from bot.sim.demo import REPO, DemoWorld, cluster_request

pytestmark = pytest.mark.slow


async def _open_request(world: DemoWorld, name: str = "payments-dev-euw1") -> int:
    d = world.driver
    await world.setup_fleet()
    path, text = cluster_request(name)
    await d.push("alice", REPO, "req", {path: text}, base="env/dev")
    number = await d.open_pr("alice", REPO, "req", base="env/dev", title=f"Add {name}")
    await world.settle()
    return number


def _bot_replies(world: DemoWorld, number: int) -> list[str]:
    return [b for a, b in world.driver.comments(REPO, number) if a.endswith("[bot]") and "command-reply" in b]


async def test_a_command_hidden_in_markup_github_does_not_show_is_not_run(tmp_path: Path) -> None:
    """Item 9: `/hold` hidden in a link reference definition or an HTML attribute is not run."""
    async with DemoWorld(tmp_path, out=lambda _: None) as world:
        number = await _open_request(world)
        hidden = [
            "Looks fine to me.\n\n[ref]:\n/hold\n",
            'Looks fine.\n\n[ref]: https://example.com\n"\n/hold hidden in a link title\n"\n',
            'Nice <img src="x.png" alt="\n/hold hidden in an attribute\n"> work\n',
            "Shipping it.\n<!--\n/hold hidden in a comment\n-->\n",
        ]
        for body in hidden:
            await world.driver.comment("alice", REPO, number, body)
        await world.settle()
        assert HOLD_LABEL not in world.pr(number).labels
        assert _bot_replies(world, number) == []
        # What GitHub shows is still a command.
        await world.driver.comment("alice", REPO, number, "Wait for the freeze.\n\n/hold freeze")
        await world.settle()
        assert HOLD_LABEL in world.pr(number).labels
        [answer] = _bot_replies(world, number)
        assert "/hold freeze" in answer
