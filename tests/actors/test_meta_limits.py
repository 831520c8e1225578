"""End to end: limits as Meta serves them. Nothing configured but the tokens: the portfolio's
limit and the throughput come from the phone-number node; webhooks move them mid-campaign."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from dispatcher import operations
from dispatcher.sandbox.config import NumberConfig
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from dispatcher.store.models import Campaign, NewRecipient
from tests.actors.test_campaign import finished
from tests.stack import Stack, wait_until

TEMPLATE = {"name": "hello_world", "language": "en_US", "components": []}


async def numbers(
    store: Store, stack: Stack, control: SandboxControl, throughputs: list[int], tier: str
) -> tuple[str, list[uuid.UUID], list[str]]:
    """Sandbox numbers of a new portfolio at ``tier``, registered with tokens only."""
    business = f"biz-e2e-{uuid.uuid4().hex[:8]}"
    waba = str(uuid.uuid4().int % 10**15)
    ids, pids = [], []
    for throughput in throughputs:
        pid = str(uuid.uuid4().int % 10**12)
        config = NumberConfig(
            phone_number_id=pid,
            token=f"tok-{pid}",
            business_id=business,
            display_phone_number=f"1555{pid[:7]}",
            throughput_mps=throughput,
            waba_id=waba,
        )
        await control.add_number(config, tier)
        instance = await operations.register_instance(
            store,
            phone_number_id=pid,
            access_token=config.token,
            business_id=business,
            waba_id=waba,
        )
        await stack.coordinator.refresh_instance.remote(str(instance.id))
        ids.append(instance.id)
        pids.append(pid)
    return business, ids, pids


async def start(store: Store, stack: Stack, ids: list[uuid.UUID], size: int) -> Campaign:
    prefix = uuid.uuid4().int % 10**4
    campaign = await operations.create_campaign(
        store,
        name=f"limits-{uuid.uuid4().hex[:6]}",
        template=TEMPLATE,
        instance_ids=ids,
        recipients=(NewRecipient(phone=f"+55479{prefix:04d}{i:04d}") for i in range(size)),
    )
    assert await stack.coordinator.start_campaign.remote(str(campaign.id))
    return campaign


async def portfolio_stats(stack: Stack, business: str) -> dict[str, Any]:
    stats: dict[str, Any] = (await stack.coordinator.stats.remote())["portfolios"].get(business, {})
    return stats


async def test_an_unlimited_portfolio_sends_6000_with_nothing_configured(
    stack: Stack, store: Store
) -> None:
    control = SandboxControl(stack.sandbox.url)
    business, ids, _ = await numbers(store, stack, control, [80, 200], "TIER_UNLIMITED")
    campaign = await start(store, stack, ids, 6_000)
    done = await wait_until(lambda: finished(store, campaign.id), timeout_s=300)
    assert done.total_sent == 6_000
    assert done.total_failed == 0
    stats = await portfolio_stats(stack, business)
    assert stats["limit_source"] == "graph_api"
    assert stats["tier"] == "TIER_UNLIMITED"
    assert stats["daily_limit"] is None
    assert stats["limit_error"] is None
    await control.aclose()


async def test_a_capability_update_mid_campaign_moves_the_gate_at_once(
    stack: Stack, store: Store
) -> None:
    control = SandboxControl(stack.sandbox.url)
    business, ids, _ = await numbers(store, stack, control, [80], "TIER_250")
    campaign = await start(store, stack, ids, 600)

    async def at_the_limit() -> bool:
        stats = await portfolio_stats(stack, business)
        return (
            stats.get("limit_source") == "graph_api"
            and stats.get("daily_limit") == 250
            and stats.get("daily_unique_used") == 250
        )

    await wait_until(at_the_limit, timeout_s=60)
    # Meta raises the limit without telling: nothing polls, the gate stays where it was.
    await control.set_tier(business, "TIER_2K", notify=False)
    await asyncio.sleep(3)
    stats = await portfolio_stats(stack, business)
    assert (stats["daily_limit"], stats["limit_source"]) == (250, "graph_api")
    # The business_capability_update webhook: the gate moves at once.
    told = time.monotonic()
    await control.set_tier(business, "TIER_2K", notify=True)

    async def moved() -> dict[str, Any] | None:
        stats = await portfolio_stats(stack, business)
        return stats if stats.get("daily_limit") == 2_000 else None

    stats = await wait_until(moved, timeout_s=10, every_s=0.05)
    assert time.monotonic() - told < 5
    assert stats["limit_source"] == "webhook"
    done = await wait_until(lambda: finished(store, campaign.id), timeout_s=60)
    assert (done.total_sent, done.total_failed) == (600, 0)
    await control.aclose()


async def test_a_throughput_upgrade_mid_campaign_pauses_then_sends_faster(
    stack: Stack, store: Store
) -> None:
    control = SandboxControl(stack.sandbox.url)
    _, ids, [pid] = await numbers(store, stack, control, [80], "TIER_UNLIMITED")
    campaign = await start(store, stack, ids, 3_000)

    async def some_sent() -> bool:
        current = await store.campaigns.get(campaign.id)
        return current is not None and current.total_sent >= 300

    await wait_until(some_sent, timeout_s=60)
    await control.throughput_upgrade(pid, maintenance_s=5.0)

    async def faster() -> bool:
        stats = await stack.coordinator.instance_stats.remote(str(ids[0]))
        return bool(stats.get("configured_rate_mps") == 1000)

    await wait_until(faster, timeout_s=60)
    done = await wait_until(lambda: finished(store, campaign.id), timeout_s=120)
    assert (done.total_sent, done.total_failed) == (3_000, 0)
    audit = await control.audit()
    assert audit["numbers"][pid]["errors"].get("131057", 0) > 0, audit["numbers"][pid]
    # Faster: Meta (the sandbox) saw more than the old 80 in some second after the upgrade.
    assert audit["numbers"][pid]["max_received_per_s"] > 80, audit["numbers"][pid]
    assert audit["duplicate_sends"] == 0
    await control.aclose()
