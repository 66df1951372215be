"""Run ``gitops-bot serve`` with a fixed installation token (for the restart test).

Used only when the GitHub App client (bot.github.auth) is not in this tree yet; it still goes
through bot.cli.serve.serve, create_app, the store, the worker and the handlers.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import gidgethub.aiohttp

from bot.cli._service import configure_logging, settings_or_error
from bot.cli.serve import serve


class StaticTokenClients:
    def __init__(self, session: aiohttp.ClientSession, api_url: str) -> None:
        self.session = session
        self.api_url = api_url

    async def installation_api(self, installation_id: int) -> gidgethub.aiohttp.GitHubAPI:
        return gidgethub.aiohttp.GitHubAPI(
            self.session, "gitops-bot-test", oauth_token="ghs_static", base_url=self.api_url
        )

    async def installation_token(self, installation_id: int) -> str:
        return "ghs_static"

    async def app_api(self) -> gidgethub.aiohttp.GitHubAPI:
        return gidgethub.aiohttp.GitHubAPI(self.session, "gitops-bot-test", base_url=self.api_url)


def main() -> int:
    settings = settings_or_error()
    configure_logging(settings.log_level)
    asyncio.run(serve(settings, clients=lambda session: StaticTokenClients(session, settings.api_url)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
