"""One access-log line per request, without its query string.

Meta's handshake carries the verify token in the query (``GET /webhook?hub.verify_token=...``)
and uvicorn's own access log prints the full path with it, so the servers turn that log off
(``access_log=False``) and this middleware writes the line instead: client, method, path,
status, duration. At debug level: ``dispatcher -v serve`` shows every request, a plain run
(and the demo, whose sandbox posts thousands of webhooks) does not.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("api.access")


class AccessLog:
    """Plain ASGI around the whole app (authentication included), bodies untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.DEBUG):
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before responding

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            client = scope.get("client")
            log.debug(
                '%s "%s %s HTTP/%s" %d %.1fms',
                f"{client[0]}:{client[1]}" if client else "-",
                scope["method"],
                scope["path"],
                scope.get("http_version", "1.1"),
                status,
                (time.perf_counter() - started) * 1000,
            )
