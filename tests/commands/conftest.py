"""Builders for issue_comment deliveries and fake promotion / PR-check APIs."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.domain.promotion.decide import Record
from bot.domain.promotion.plan import History
from bot.service.context import HandlerContext
from bot.service.records import write_record
from tests.support.repos import FakeRepoAccess
from tests.support.store import StateStore

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "commands"
REPO = "Codertocat/Hello-World"
API = f"/repos/{REPO}"


BOT = {"login": "gitops-bot[bot]", "type": "Bot"}


def make_ctx(store: StateStore | None = None) -> HandlerContext:
    return HandlerContext(repos=FakeRepoAccess(), delivery_id="d-1", store=store or StateStore())


async def record_promotion(store: StateStore, pr: dict[str, Any], origin: int) -> None:
    """Write the bot's record of promotion ``pr`` carrying ``origin`` (as promoting it would)."""
    head = pr["head"]
    history = History(origin, "t", "dev", "staging", origin, "c" * 40, "cherry-pick")
    record = Record("promotion", head["ref"], pr["base"]["ref"], history, (head["sha"],), pr["number"])
    await write_record(make_ctx(store), REPO, record)


def comment_payload(
    body: str,
    *,
    action: str = "created",
    login: str = "alice",
    sender_type: str = "User",
    before: str | None = None,
    on_pr: bool = True,
    number: int = 7,
    comment_id: int = 4242,
) -> dict[str, Any]:
    """An issue_comment payload built from octokit's example, with our body, sender and PR."""
    name = "edited.payload.json" if action == "edited" else "created.payload.json"
    data = copy.deepcopy(json.loads((FIXTURES / name).read_text(encoding="utf-8")))
    data["action"] = action
    data["comment"]["body"] = body
    data["comment"]["id"] = comment_id
    data["comment"]["user"] = {**data["comment"]["user"], "login": login, "type": sender_type}
    data["sender"] = {**data["sender"], "login": login, "type": sender_type}
    data["issue"]["number"] = number
    if on_pr:
        data["issue"]["pull_request"] = {"url": f"https://api.github.com{API}/pulls/{number}"}
    else:
        data["issue"].pop("pull_request", None)
    if action == "edited":
        data["changes"] = {} if before is None else {"body": {"from": before}}
    return data


def pr_json(
    number: int = 7,
    *,
    state: str = "open",
    merged: bool = False,
    labels: Sequence[str] = (),
    head_ref: str = "feat",
    user: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "number": number,
        "state": state,
        "merged": merged,
        "merged_at": "2026-11-21T05:00:00Z" if merged else None,
        "title": "Add cluster payments-dev",
        "html_url": f"https://github.com/{REPO}/pull/{number}",
        "labels": [{"name": n} for n in labels],
        "head": {"ref": head_ref, "sha": "a" * 40},
        "base": {"ref": "dev", "sha": "b" * 40},
        "user": user or {"login": "alice", "type": "User"},
    }


def config_answer(text: str) -> dict[str, Any]:
    return {"type": "file", "encoding": "base64", "content": base64.b64encode(text.encode()).decode()}


def responses(
    *,
    role: str | None = "write",
    permission: str | None = None,
    pr: dict[str, Any] | None = None,
    config: str | None = None,
    comments: list[dict[str, Any]] | None = None,
    number: int = 7,
) -> dict[tuple[str, str], Any]:
    """Canned GitHub answers for one command; ``role=None`` means not a collaborator (404)."""
    if role is None:
        perm: Any = (404, {"message": "Not Found"})
    else:
        perm = {
            "permission": permission or {"maintain": "write", "triage": "read"}.get(role, role),
            "role_name": role,
        }
    return {
        ("GET", f"{API}/pulls/{number}"): pr or pr_json(number),
        ("GET", f"{API}/contents/.github/gitops-bot.yml"): (
            (404, {"message": "Not Found"}) if config is None else config_answer(config)
        ),
        ("GET", f"{API}/collaborators/alice/permission"): perm,
        ("GET", f"{API}/issues/{number}/comments"): comments or [],
    }


@dataclass
class Outcome:
    ok: bool
    message: str
    url: str | None = None


@dataclass
class FakeAPIs:
    """Fake handlers.promotion and handlers.pull_request modules that record their calls."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    outcome: Outcome = field(
        default_factory=lambda: Outcome(True, "Opened the promotion to staging.", "https://x/pr/8")
    )
    error: Exception | None = None
    recovered: dict[str, list[Outcome]] = field(default_factory=dict)

    async def _record(self, name: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((name, kwargs))
        if self.error is not None:
            raise self.error

    async def promote_pr(self, gh: Any, ctx: Any, **kwargs: Any) -> Outcome:
        await self._record("promote_pr", kwargs)
        return self.outcome

    async def rollback_pr(self, gh: Any, ctx: Any, **kwargs: Any) -> Outcome:
        await self._record("rollback_pr", kwargs)
        return self.outcome

    async def evaluate_promotion(self, gh: Any, ctx: Any, **kwargs: Any) -> Outcome:
        await self._record("evaluate_promotion", kwargs)
        return Outcome(True, "all gates hold")

    async def reconcile_promotions(self, gh: Any, ctx: Any, **kwargs: Any) -> list[Outcome]:
        await self._record("reconcile_promotions", kwargs)
        return self.recovered.pop(kwargs["repo"], [])

    async def run_pr_checks(self, gh: Any, ctx: Any, **kwargs: Any) -> None:
        await self._record("run_pr_checks", kwargs)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def apis(monkeypatch: pytest.MonkeyPatch) -> FakeAPIs:
    """Stand in for promotion and the PR checks where the command runners call them."""
    fake = FakeAPIs()
    for where, name in (
        ("handlers.commands.promote", "promote_pr"),
        ("handlers.commands.rollback", "rollback_pr"),
        ("handlers.commands.unhold", "evaluate_promotion"),
        ("handlers.commands.base", "evaluate_promotion"),
        ("handlers.commands.base", "run_pr_checks"),
    ):
        monkeypatch.setattr(f"{where}.{name}", getattr(fake, name))
    return fake
