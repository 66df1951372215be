"""What a promotion step answers, and how a step stops with a message for people."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.promotion.decide import Refusal

CHECK_NAME = "gitops-bot/promotion"


@dataclass
class PromotionOutcome:
    """What a promotion step did, for a PR comment (``message`` is short markdown)."""

    ok: bool
    message: str
    url: str | None = None


class Stop(Exception):
    """Stop a promotion step with a message for people (not a crash)."""

    def __init__(self, message: str, *, ok: bool = False, url: str | None = None) -> None:
        super().__init__(message)
        self.outcome = PromotionOutcome(ok, message, url)

    @classmethod
    def of(cls, refusal: Refusal) -> Stop:
        return cls(refusal.message, ok=refusal.ok, url=refusal.url)
