"""The httpx transports (``TransportKind.HTTPX`` and ``HTTPX_AIOHTTP``), kept apart from
:mod:`dispatcher.meta.transport` so that only a process that chooses httpx imports it."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from dispatcher.meta.transport import PoolConfig, TransportError, request_path


class HttpxTransport:
    """httpx ``AsyncClient``, over its own transport or over aiohttp's."""

    def __init__(self, pool: PoolConfig, *, over_aiohttp: bool = False) -> None:
        limits = httpx.Limits(
            max_connections=pool.max_connections,
            max_keepalive_connections=pool.max_connections,
            keepalive_expiry=pool.keepalive_s,
        )
        timeout = httpx.Timeout(pool.request_timeout_s, connect=pool.connect_timeout_s)
        transport: httpx.AsyncBaseTransport | None = None
        if over_aiohttp:
            from httpx_aiohttp import AiohttpTransport as HttpxAiohttp

            transport = HttpxAiohttp(limits=limits)
        self._client = httpx.AsyncClient(limits=limits, timeout=timeout, transport=transport)

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> tuple[int, bytes]:
        try:
            response = await self._client.request(method, url, headers=headers, content=body)
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransportError(
                f"connect timeout: {method} {request_path(url)}", timeout=True
            ) from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise TransportError(
                f"timeout: {method} {request_path(url)}", timeout=True, in_doubt=True
            ) from exc
        except httpx.ConnectError as exc:
            raise TransportError(
                f"{type(exc).__name__}: {method} {request_path(url)}", timeout=False
            ) from exc
        except httpx.TransportError as exc:
            raise TransportError(
                f"{type(exc).__name__}: {method} {request_path(url)}", timeout=False, in_doubt=True
            ) from exc
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self._client.aclose()
