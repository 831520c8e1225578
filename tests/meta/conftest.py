"""The Meta sandbox on a real port, and a real webhook receiver, shared by the Meta tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from dispatcher.meta.client import MetaClient
from dispatcher.meta.tiers import MessagingTier
from dispatcher.meta.transport import PoolConfig
from dispatcher.sandbox.config import (
    NumberConfig,
    PortfolioConfig,
    SandboxConfig,
    TemplateConfig,
    WebhookConfig,
)
from dispatcher.sandbox.control import SandboxControl
from dispatcher.sandbox.server import SandboxProcess, free_port

APP_SECRET = "test-app-secret"
UNDELIVERABLE = "+5511900000026"


@dataclass
class Received:
    """Webhook POSTs as the receiver got them: raw body and signature header."""

    posts: list[tuple[bytes, str | None]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def clear(self) -> None:
        self.posts.clear()
        self.arrived.clear()

    async def wait_for_statuses(self, count: int, timeout_s: float = 20.0) -> None:
        """Until at least ``count`` statuses arrived (generous bound: real time is involved)."""
        import orjson

        async def enough() -> None:
            while True:
                total = sum(
                    len(change["value"].get("statuses", []))
                    for body, _ in self.posts
                    for entry in orjson.loads(body)["entry"]
                    for change in entry["changes"]
                )
                if total >= count:
                    return
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout_s)


def sandbox_config(webhook_url: str, **webhook: object) -> SandboxConfig:
    return SandboxConfig(
        numbers=[
            NumberConfig(
                phone_number_id="1001",
                token="token-1001",
                business_id="biz-small",
                throughput_mps=3,
            ),
            NumberConfig(
                phone_number_id="1002",
                token="token-1002",
                business_id="biz-small",
                throughput_mps=1000,
                undeliverable=[UNDELIVERABLE],
            ),
            NumberConfig(
                phone_number_id="2001",
                token="token-2001",
                business_id="biz-large",
                throughput_mps=1000,
            ),
        ],
        portfolios=[
            PortfolioConfig(business_id="biz-small", messaging_tier=MessagingTier.TIER_250),
            PortfolioConfig(business_id="biz-large", messaging_tier=MessagingTier.TIER_UNLIMITED),
        ],
        templates=[
            TemplateConfig(name="hello_world"),
            TemplateConfig(name="otp_code", category="AUTHENTICATION"),
        ],
        webhook=WebhookConfig(
            url=webhook_url,
            app_secret=APP_SECRET,
            **{
                "sent_delay_s": 0.0,
                "delivered_delay_s": 0.05,
                "read_delay_s": 0.1,
                "read_ratio": 1.0,
                "flush_interval_s": 0.05,
                **webhook,
            },
        ),
        pair_interval_s=6.0,
        pair_burst=2,
    )


@pytest.fixture(scope="session")
async def received() -> AsyncIterator[tuple[str, Received]]:
    """A webhook receiver on a real loopback port that keeps every POST."""
    store = Received()

    async def handle(request: web.Request) -> web.Response:
        store.posts.append((await request.read(), request.headers.get("X-Hub-Signature-256")))
        store.arrived.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/webhook", store
    await runner.cleanup()


@pytest.fixture(scope="session")
def sandbox_process(received: tuple[str, Received]) -> Iterator[SandboxProcess]:
    with SandboxProcess(sandbox_config(received[0])) as process:
        yield process


@pytest.fixture
async def sandbox(
    sandbox_process: SandboxProcess, received: tuple[str, Received]
) -> AsyncIterator[SandboxControl]:
    """The sandbox, reset to the test configuration before each test."""
    control = SandboxControl(sandbox_process.url)
    await control.reset(sandbox_config(received[0]))
    received[1].clear()
    yield control
    await control.aclose()


@pytest.fixture
async def client(sandbox_process: SandboxProcess) -> AsyncIterator[MetaClient]:
    meta = MetaClient(
        sandbox_process.url, "v23.0", pool=PoolConfig(request_timeout_s=2.0, max_connections=16)
    )
    yield meta
    await meta.aclose()
