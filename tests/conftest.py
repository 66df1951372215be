"""Shared fixtures. ``SHARED`` is ``../shared`` when present; tests use the project's own copies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _process_wiring_reset() -> Iterator[None]:
    """Undo the process-wide wiring a test's service may set (shared lock, App id filter)."""
    yield
    from bot.github.checks import use_app_id, use_shared_lock

    use_shared_lock(None)
    use_app_id(None)
