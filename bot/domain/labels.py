"""Labels and markers the bot reads and writes; one place so every part agrees."""

from __future__ import annotations

HOLD_LABEL = "gitops-bot/hold"
PROMOTION_LABEL = "gitops-bot/promotion"
ROLLBACK_LABEL = "gitops-bot/rollback"

STICKY_MARKER = "<!-- gitops-bot:sticky -->"
PROMOTION_MARKER_PREFIX = "<!-- gitops-bot:promotion "
