"""The one seam between the Meta client and an HTTP library.

The client speaks bytes in, ``(status, bytes)`` out, so the HTTP library can be chosen by
measurement (``make bench``, section ``meta``) without touching the client. Every library's
network failures surface as :class:`TransportError`, never as the library's own exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import aiohttp

from dispatcher.errors import DispatcherError


class TransportError(DispatcherError):
    """The request got no HTTP answer: connection refused or reset, or a timeout.

    ``in_doubt``: the request may have reached the server (the connection was up when it
    failed: a read timeout, a reset after sending), so the server may have acted on it. A
    failure to connect (refused, DNS, connect timeout, no free connection) is not in doubt:
    nothing left this process.
    """

    def __init__(self, message: str, *, timeout: bool, in_doubt: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.in_doubt = in_doubt


class TransportKind(StrEnum):
    AIOHTTP = "aiohttp"
    """aiohttp's client directly: the fastest measured (see README, "Meta client")."""
    HTTPX_AIOHTTP = "httpx-aiohttp"
    """httpx's API over aiohttp's connection pool."""
    HTTPX = "httpx"
    """httpx with its default transport (httpcore)."""


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Connection pool and timeouts of one transport (one per instance actor)."""

    max_connections: int = 64
    connect_timeout_s: float = 5.0
    request_timeout_s: float = 15.0
    keepalive_s: float = 30.0


class Transport(Protocol):
    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> tuple[int, bytes]:
        """Send one request; the status and body of the answer, or :class:`TransportError`."""
        ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    """aiohttp ``ClientSession`` with a bounded keep-alive pool."""

    def __init__(self, pool: PoolConfig) -> None:
        self._pool = pool
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: a ClientSession binds to the running loop.
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._pool.max_connections,
                keepalive_timeout=self._pool.keepalive_s,
                ttl_dns_cache=300,
            )
            timeout = aiohttp.ClientTimeout(
                total=self._pool.request_timeout_s, connect=self._pool.connect_timeout_s
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",)
            )
        return self._session

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> tuple[int, bytes]:
        try:
            async with self._get_session().request(
                method, url, headers=headers, data=body
            ) as response:
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError as exc:  # connect, or waiting for a connection
            raise TransportError(
                f"connect timeout: {method} {request_path(url)}", timeout=True
            ) from exc
        except aiohttp.ClientConnectorError as exc:  # refused, unreachable, DNS
            raise TransportError(
                f"{type(exc).__name__}: {method} {request_path(url)}", timeout=False
            ) from exc
        except TimeoutError as exc:
            raise TransportError(
                f"timeout: {method} {request_path(url)}", timeout=True, in_doubt=True
            ) from exc
        except aiohttp.ClientError as exc:  # connected, then reset or cut: it may have gone
            raise TransportError(
                f"{type(exc).__name__}: {method} {request_path(url)}", timeout=False, in_doubt=True
            ) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def make_transport(kind: TransportKind, pool: PoolConfig | None = None) -> Transport:
    """A transport of the given kind with its own connection pool."""
    pool = pool or PoolConfig()
    if kind is TransportKind.AIOHTTP:
        return AiohttpTransport(pool)
    # Imported here: httpx pulls in its CLI (rich, click, pygments), about 10 MB that every
    # instance actor on the default aiohttp transport would carry for nothing.
    from dispatcher.meta.httpx_transport import HttpxTransport

    return HttpxTransport(pool, over_aiohttp=kind is TransportKind.HTTPX_AIOHTTP)


def request_path(url: str) -> str:
    """The URL without its query string: error messages never carry parameters."""
    return url.split("?", 1)[0]
