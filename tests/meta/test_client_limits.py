"""Where the messaging limit is read (Meta's Messaging Limits page): the phone-number node's
``whatsapp_business_manager_messaging_limit``; the business node has no such field (error
100); ``messaging_limit_tier`` only up to v23.0."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from dispatcher.meta.client import MetaClient, parse_limit
from dispatcher.meta.messages import MetaError
from dispatcher.meta.tiers import MessagingTier
from dispatcher.sandbox.control import SandboxControl
from dispatcher.sandbox.server import SandboxProcess, free_port


@pytest.fixture
async def current(sandbox_process: SandboxProcess) -> AsyncIterator[MetaClient]:
    meta = MetaClient(sandbox_process.url, "v25.0")
    yield meta
    await meta.aclose()


async def test_the_limit_is_read_from_the_phone_number_node(
    current: MetaClient, sandbox: SandboxControl
) -> None:
    small = await current.phone_number("1001", "token-1001")
    large = await current.phone_number("2001", "token-2001")
    assert small.messaging_tier is MessagingTier.TIER_250
    assert large.messaging_tier is MessagingTier.TIER_UNLIMITED
    assert (large.throughput_mps, small.throughput_mps) == (1000, 80)
    assert small.display_phone_number == "15550000000"
    assert small.limit_error is None


async def test_the_business_node_has_no_limit_field(
    sandbox_process: SandboxProcess, sandbox: SandboxControl
) -> None:
    async with httpx.AsyncClient(base_url=sandbox_process.url) as http:
        answer = await http.get(
            "/v25.0/biz-small",
            params={"fields": "whatsapp_business_manager_messaging_limit"},
            headers={"Authorization": "Bearer token-1001"},
        )
        legacy = await http.get(
            "/v25.0/1001",
            params={"fields": "messaging_limit_tier"},
            headers={"Authorization": "Bearer token-1001"},
        )
        old = await http.get(
            "/v23.0/1001",
            params={"fields": "messaging_limit_tier"},
            headers={"Authorization": "Bearer token-1001"},
        )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == 100
    assert "nonexisting field" in answer.json()["error"]["message"]
    assert legacy.json()["error"]["code"] == 100  # deprecated after v23.0
    assert old.json()["messaging_limit_tier"] == "TIER_250"


async def test_a_v23_client_still_reads_the_legacy_tier(
    sandbox_process: SandboxProcess, sandbox: SandboxControl
) -> None:
    meta = MetaClient(sandbox_process.url, "v23.0")
    try:
        info = await meta.phone_number("1001", "token-1001")
    finally:
        await meta.aclose()
    assert info.messaging_tier is MessagingTier.TIER_250


async def test_the_legacy_tier_is_the_fallback_up_to_v23_only() -> None:
    """A Graph API that answers only ``messaging_limit_tier`` (an old number, v23.0): the
    v23 client falls back to it; the v25 client never asks for it."""
    asked: list[str] = []

    async def node(request: web.Request) -> web.Response:
        asked.append(request.query.get("fields", ""))
        return web.json_response({"id": "1", "messaging_limit_tier": "TIER_10K"})

    app = web.Application()
    app.router.add_get("/{version}/{node}", node)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        old, new = (MetaClient(f"http://127.0.0.1:{port}", v) for v in ("v23.0", "v25.0"))
        legacy = await old.phone_number("1", "t")
        current = await new.phone_number("1", "t")
        await old.aclose()
        await new.aclose()
    finally:
        await runner.cleanup()
    assert legacy.messaging_tier is MessagingTier.TIER_10K
    assert current.messaging_tier is None
    assert current.limit_error is not None
    assert "messaging_limit_tier" in asked[0]
    assert "messaging_limit_tier" not in asked[1]


async def test_a_bad_token_makes_the_node_unreadable(
    current: MetaClient, sandbox: SandboxControl
) -> None:
    with pytest.raises(MetaError) as denied:
        await current.phone_number("1001", "wrong-token")
    assert denied.value.code == 190
    assert "wrong-token" not in str(denied.value)


@pytest.mark.parametrize(
    ("value", "tier"),
    [
        ("TIER_2K", MessagingTier.TIER_2K),
        (2000, MessagingTier.TIER_2K),
        ("TIER_UNLIMITED", MessagingTier.TIER_UNLIMITED),
        (-1, MessagingTier.TIER_UNLIMITED),
        ({"messaging_limit": "TIER_100K"}, MessagingTier.TIER_100K),
        ({"tier": "TIER_10K"}, MessagingTier.TIER_10K),
        ("nonsense", None),
        (None, None),
        (True, None),
    ],
)
def test_limits_are_parsed_in_every_shape_meta_writes(
    value: object, tier: MessagingTier | None
) -> None:
    assert parse_limit(value) is tier
