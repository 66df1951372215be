"""Processes that run rendering engines for bot.domain.render, sandboxed (see docs/render.md)."""
