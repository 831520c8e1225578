"""The Starlette app: thin handlers over the store, the queues and the coordinator actor."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from api import (
    attempts,
    campaigns,
    console,
    health,
    instances,
    queue,
    recipients,
    suppressions,
    variants,
    webhook,
)
from api.access_log import AccessLog
from api.errors import error_response, exception_handlers
from api.openapi import Operation, openapi_route, operation_routes
from api.state import AppState
from dispatcher.config import Settings
from dispatcher.deployment import Deployment
from dispatcher.errors import ConfigError
from dispatcher.queue.intake import WebhookIntake

log = logging.getLogger(__name__)

OPERATIONS: list[Operation] = [
    *instances.OPERATIONS,
    *campaigns.OPERATIONS,
    *recipients.OPERATIONS,
    *attempts.OPERATIONS,
    *variants.OPERATIONS,
    *queue.OPERATIONS,
    *suppressions.OPERATIONS,
    *webhook.OPERATIONS,
    *health.OPERATIONS,
]
TITLE = "WhatsApp campaign dispatcher"
VERSION = "1.0.0"
PUBLIC_PATHS = frozenset(
    {op.full_path for op in OPERATIONS if op.public} | {"/openapi.json"} | console.PATHS
)


class BearerAuth:
    """``Authorization: Bearer $DISPATCHER_API_TOKEN`` on everything but the public paths,
    compared in constant time. Plain ASGI: request bodies stream through untouched."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self._app(scope, receive, send)
            return
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        scheme, _, given = header.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self._token):
            response = error_response(
                401,
                "unauthorized",
                "missing or invalid bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)


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
        intake = WebhookIntake(queues.webhooks)
        app.state.dispatcher = AppState(settings, store, queues, coordinator, intake)
        try:
            yield
        finally:
            await intake.close()
            await queues.client.aclose()
            await store.close()

    return Starlette(
        routes=[
            *operation_routes(OPERATIONS),
            openapi_route(OPERATIONS, title=TITLE, version=VERSION),
            *console.routes(),
            *(routes or []),
        ],
        middleware=[Middleware(AccessLog), Middleware(BearerAuth, token=token)],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
