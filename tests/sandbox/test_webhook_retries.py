"""The sandbox retries a webhook delivery that failed, as Meta does (Webhooks overview: for
up to 7 days, less and less often), alongside newer deliveries."""

from __future__ import annotations

import asyncio
import random
import time

from aiohttp import web

from dispatcher.sandbox.audit import Audit
from dispatcher.sandbox.config import WebhookConfig
from dispatcher.sandbox.server import free_port
from dispatcher.sandbox.webhooks import WebhookSender


async def test_a_delivery_to_an_endpoint_that_was_down_arrives_once_it_is_back() -> None:
    port = free_port()
    config = WebhookConfig(url=f"http://127.0.0.1:{port}/hook", max_attempts=1, retry_for_s=30)
    audit = Audit(max_records=100)
    sender = WebhookSender(config, audit, time.monotonic, time.time, random.Random(1))
    received: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(text="ok")

    # The endpoint is down (nothing listens): the quick attempt fails, a retry is scheduled.
    await sender._post(b'{"entry": []}', 3)
    assert sender.pending() == 1
    assert received == []
    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        for _ in range(100):
            if received and sender.pending() == 0:
                break
            await asyncio.sleep(0.1)
        assert received == [b'{"entry": []}']
        assert audit.webhook_statuses == 3
        assert audit.webhook_failures == 0
        assert sender.pending() == 0
    finally:
        await sender.stop()
        await runner.cleanup()
