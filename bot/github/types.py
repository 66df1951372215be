"""Interfaces between the service and the GitHub client layer."""

from __future__ import annotations

from typing import Protocol

import gidgethub.abc


class GitHubClients(Protocol):
    """Hands out authenticated GitHub API clients (implemented by :class:`bot.github.auth.GitHubApp`)."""

    async def installation_api(self, installation_id: int) -> gidgethub.abc.GitHubAPI:
        """A client authenticated as the installation (token cached until shortly before expiry)."""
        ...

    async def installation_token(self, installation_id: int) -> str:
        """The installation access token itself, for git over HTTPS. Never log it."""
        ...

    async def app_api(self) -> gidgethub.abc.GitHubAPI:
        """A client authenticated as the App itself (JWT), for ``/app/...`` routes."""
        ...
