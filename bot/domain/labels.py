"""Labels and markers the bot reads and writes; one place so every part agrees.

A marker is a hidden HTML comment the bot puts in what it writes, so it can find and update
that text later. Anyone can type a marker, so the bot reads one only from a comment whose
author it checked is itself (:mod:`bot.github.comments`), and never takes a PR body's marker
as a fact: what a promotion is comes from the bot's store (:mod:`bot.service.records`).
"""

from __future__ import annotations

HOLD_LABEL = "gitops-bot/hold"
PROMOTION_LABEL = "gitops-bot/promotion"
ROLLBACK_LABEL = "gitops-bot/rollback"

STICKY_MARKER = "<!-- gitops-bot:sticky -->"
PROMOTION_MARKER_PREFIX = "<!-- gitops-bot:promotion "
"""The promotion history in a promotion PR body: shown for people, never read as a fact."""
ROLLBACK_MARKER_PREFIX = "<!-- gitops-bot:rollback "
GATES_START = "<!-- gitops-bot:gates -->"
GATES_END = "<!-- /gitops-bot:gates -->"
CONFLICT_MARKER = "<!-- gitops-bot:promotion-conflict {env} -->"
OUTCOME_MARKER = "<!-- gitops-bot:promotion-outcome {env} -->"
RED_MARKER = "<!-- gitops-bot:rollback-on-red -->"
LOST_MARKER = "<!-- gitops-bot:promotion-lost -->"
HOLD_MARKER = "<!-- gitops-bot:hold-kept -->"
REPLY_MARKER = "<!-- gitops-bot:command-reply {comment_id} -->"
