"""Durable delivery store: SQLite (default) and PostgreSQL (scale-out)."""
