"""A request that meets a Postgres or Redis outage gets a 503 to retry, never a 500.

The route raises what asyncpg and redis-py raise while their server restarts (the unix socket
gone, a connection refused): the API's own exception handlers, in a real Starlette app.
"""

from __future__ import annotations

import asyncpg
import httpx
import pytest
import redis.exceptions
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.errors import exception_handlers

OUTAGES = [
    FileNotFoundError(2, "No such file or directory"),  # Postgres' socket, mid-restart
    ConnectionRefusedError(111, "Connect call failed"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.InterfaceError("pool is closed"),
    redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379"),
]


def _app(exc: Exception) -> Starlette:
    async def route(request: Request) -> Response:
        raise exc

    return Starlette(routes=[Route("/boom", route)], exception_handlers=exception_handlers())


@pytest.mark.parametrize("exc", OUTAGES, ids=lambda e: type(e).__name__)
async def test_an_outage_is_a_503_with_retry_after(exc: Exception) -> None:
    transport = httpx.ASGITransport(app=_app(exc), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"]["code"] == "unavailable"


async def test_anything_else_is_still_a_500_without_details() -> None:
    app = _app(ValueError("secret detail"))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert "secret" not in response.text
