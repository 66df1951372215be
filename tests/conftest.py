"""Shared fixtures. ``SHARED`` is ``../shared`` when present; tests use the project's own copies."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared"
