"""Governance: commit signatures, CODEOWNERS and approval rules (pure; local tools only, no network)."""
