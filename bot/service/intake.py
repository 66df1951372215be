"""Guards of the HTTP listener against slow and greedy clients.

aiohttp parses requests; these guards bound what one client can hold:

* **header timeout**: the listener's keep-alive timeout. aiohttp closes a connection whose
  next request has not been fully parsed (request line and headers) within that time of the
  connection opening or of the last answer, however slowly its bytes trickle in;
* **body timeout**: the webhook handler reads the body under its own deadline (408), and a
  body left unread after an early answer is drained for no longer than that;
* **connection limit**: :class:`ConnectionLimit` wraps the server's protocol factory; past
  the limit a new connection gets a short ``503`` and is closed at once, before it is parsed;
* **no inflation**: ``auto_decompress`` is off, so a compressed body is never inflated (the
  webhook handler refuses any ``Content-Encoding`` but identity).

:func:`start_listener` starts the service's site with all of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 33\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n\r\n"
    b"too many connections; retry soon\n"
)


REFUSED_LINGER = 1.0
"""Seconds a refused connection stays open, its input discarded, so the client reads the 503
(closing at once with unread input would reset the connection and lose the answer)."""


class _Refuse(asyncio.Protocol):
    """Answer 503, discard the input, close within :data:`REFUSED_LINGER` seconds."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(REFUSAL)
            if transport.can_write_eof():
                transport.write_eof()
        asyncio.get_running_loop().call_later(REFUSED_LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # close now


class _Counted(asyncio.Protocol):
    """Forward every protocol call to aiohttp's handler; tell the limit when the connection ends."""

    __slots__ = ("_done", "_inner")

    def __init__(self, inner: Any, done: Callable[[], None]) -> None:
        self._inner = inner
        self._done: Callable[[], None] | None = done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._inner.connection_lost(exc)
        finally:
            if self._done is not None:
                self._done()
                self._done = None


class ConnectionLimit:
    """A protocol factory allowing at most ``limit`` open connections to ``factory``'s protocols."""

    def __init__(
        self, factory: Callable[[], Any], limit: int, *, on_refused: Callable[[], None] | None = None
    ) -> None:
        self.factory = factory
        self.limit = limit
        self.open = 0
        self.refused = 0
        self.on_refused = on_refused

    def _closed(self) -> None:
        self.open -= 1

    def __call__(self) -> asyncio.Protocol:
        if self.open >= self.limit:
            self.refused += 1
            if self.on_refused is not None:
                self.on_refused()
            if self.refused == 1 or self.refused % 1000 == 0:
                log.warning("connection refused: %d open, the limit is %d", self.open, self.limit)
            return _Refuse()
        self.open += 1
        return _Counted(self.factory(), self._closed)


def runner_options(header_timeout: float, body_timeout: float) -> dict[str, Any]:
    """The AppRunner options of a guarded listener.

    No access log, no inflation, the header timeout, and at most ``body_timeout`` (10 s at
    most) spent draining a body left unread after an early answer (413, 408, 415).
    """
    return {
        "access_log": None,
        "auto_decompress": False,
        "keepalive_timeout": header_timeout,
        "lingering_time": min(body_timeout, 10.0),
    }


class GuardedSite(web.TCPSite):
    """A TCP site whose connections go through a :class:`ConnectionLimit`."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        max_connections: int,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(runner, host, port)
        self.max_connections = max_connections
        self.on_refused = on_refused
        self.limit: ConnectionLimit | None = None

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None, "the runner is not set up"
        self.limit = ConnectionLimit(server, self.max_connections, on_refused=self.on_refused)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.limit,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = int(sockets[0].getsockname()[1]) if sockets else self._port


async def start_listener(
    runner: web.BaseRunner,
    host: str,
    port: int,
    *,
    max_connections: int,
    on_refused: Callable[[], None] | None = None,
) -> int:
    """Start a :class:`GuardedSite` for ``runner``; return the port it listens on."""
    site = GuardedSite(runner, host, port, max_connections=max_connections, on_refused=on_refused)
    await site.start()
    return site.port
