"""A local stand-in for Slack's and Discord's incoming webhooks: a Starlette app on
127.0.0.1 that records every post and answers from a script (then 200)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.engine.fakes import wait_for

SECRET_PATH = "T0SECRET/B0SECRET/hunter2webhooksecret"
"""The secret part of each webhook URL: no post, no log line may carry it."""


@dataclass
class Receiver:
    port: int = 0
    posts: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"slack": [], "discord": []}
    )
    """Accepted posts' bodies, per service."""
    attempts: dict[str, int] = field(default_factory=lambda: {"slack": 0, "discord": 0})
    script: dict[str, list[tuple[int, dict[str, str]]]] = field(
        default_factory=lambda: {"slack": [], "discord": []}
    )
    """Answers (status, headers) to give before the default 200."""
    down: bool = False
    """While True, every post is answered 503 (after the script)."""
    slow_s: float = 0.0
    """Each accepted post is recorded, then answered this many seconds later (a service
    that takes the post but answers after the sender's timeout)."""

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port}/{service}/{SECRET_PATH}"

    async def handle(self, request: Request) -> Response:
        service = request.path_params["service"]
        self.attempts[service] += 1
        body = orjson.loads(await request.body())
        if self.script[service]:
            status, headers = self.script[service].pop(0)
            return JSONResponse({"retry_after": 0.01}, status_code=status, headers=headers)
        if self.down:
            return Response(b"down", status_code=503)
        self.posts[service].append(body)
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        return Response(
            "ok" if service == "slack" else b"", status_code=200 if service == "slack" else 204
        )

    def raw(self) -> str:
        return orjson.dumps(self.posts).decode()


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    recorder = Receiver()
    app = Starlette(routes=[Route("/{service}/{rest:path}", recorder.handle, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    recorder.port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_for(lambda: server.started)
    try:
        yield recorder
    finally:
        server.should_exit = True
        await task
        sock.close()


def closed_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
