"""The Starlette app: thin handlers over the store and the coordinator actor."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from api import webhook
from api.errors import error_response
from api.state import AppState
from dispatcher.config import Settings
from dispatcher.deployment import Deployment
from dispatcher.errors import ConfigError, DispatcherError, ServiceError

log = logging.getLogger(__name__)

PUBLIC_PATHS = {"/api/whatsapp/webhook", "/healthz", "/readyz", "/openapi.json"}


class BearerAuth(BaseHTTPMiddleware):
    """``Authorization: Bearer $DISPATCHER_API_TOKEN`` on everything but the public paths."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self._token = token.encode()

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path in PUBLIC_PATHS:
            return await call_next(request)
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), self._token):
            return error_response(401, "unauthorized", "missing or invalid bearer token")
        return await call_next(request)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, "http_error", str(exc.detail))


async def _dispatcher_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ServiceError):
        return error_response(503, "unavailable", str(exc))
    return error_response(400, "bad_request", str(exc))


def create_app(
    settings: Settings,
    deployment: Deployment,
    coordinator: Any,
    routes: list[BaseRoute] | None = None,
) -> Starlette:
    """The API of one deployment; the lifespan opens (and closes) its store and queues."""
    token = settings.api_token.get_secret_value()
    if not token:
        raise ConfigError("DISPATCHER_API_TOKEN", "not configured")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store, queues = await deployment.open(pool_size=8)
        app.state.dispatcher = AppState(settings, store, queues, coordinator)
        try:
            yield
        finally:
            await queues.client.aclose()
            await store.close()

    return Starlette(
        routes=[*webhook.routes, *(routes or [])],
        middleware=[Middleware(BearerAuth, token=token)],
        exception_handlers={
            HTTPException: _http_error,
            DispatcherError: _dispatcher_error,
        },
        lifespan=lifespan,
    )
