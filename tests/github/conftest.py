"""Fixtures for the GitHub client tests: a key pair, a scripted GitHub on port 0, a recorded sleep."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.github.fakegh import FakeGitHub, make_private_key, serve


@pytest.fixture(scope="session")
def keypair() -> tuple[str, str]:
    return make_private_key()


@pytest.fixture
def fake(keypair: tuple[str, str]) -> FakeGitHub:
    return FakeGitHub(public_key=keypair[1])


@pytest.fixture
async def base_url(fake: FakeGitHub) -> AsyncIterator[str]:
    async with serve(fake) as url:
        yield url


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class Sleeper:
    """Records requested sleeps and returns at once; :meth:`clock` is a monotonic clock they advance."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.now = 1000.0

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def sleeper() -> Sleeper:
    return Sleeper()


from tests.pg import pg_dsn, pg_server  # noqa: E402  (PostgreSQL fixtures for the redelivery tests)

__all__ = ["Sleeper", "pg_dsn", "pg_server"]
