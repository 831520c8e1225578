"""End to end on real local Ray, Redis, Postgres and the sandbox: what reached "Meta"."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import ray

from dispatcher import operations
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from dispatcher.store.models import Campaign, CampaignStatus, NewRecipient, RecipientStatus
from tests.stack import Stack, wait_until

TEMPLATE = {"name": "hello_world", "language": "en_US", "components": []}


async def register_all(store: Store, stack: Stack, numbers: list[str]) -> list[uuid.UUID]:
    business = {"5001": "biz-small", "5002": "biz-small", "6001": "biz-large", "6002": "biz-large"}
    # Meta reports throughput as a level (STANDARD = 80, HIGH = 1,000): the operator sets
    # the sandbox's odd limits explicitly.
    throughput = {"5001": 80, "5002": 40, "6001": 500, "6002": 200}
    ids = []
    for number in numbers:
        instance = await operations.register_instance(
            store,
            phone_number_id=number,
            access_token=stack.numbers[number],
            business_id=business[number],
            throughput_mps=throughput[number],
        )
        await stack.coordinator.refresh_instance.remote(str(instance.id))
        ids.append(instance.id)
    return ids


async def run_campaign(
    store: Store, stack: Stack, instance_ids: list[uuid.UUID], size: int, prefix: int
) -> Campaign:
    """A campaign of ``size`` Brazilian mobiles of the area code ``prefix`` (a valid one: 11,
    21, 27...; an invalid one makes every row ``invalid``), started."""
    campaign = await operations.create_campaign(
        store,
        name=f"e2e-{uuid.uuid4().hex[:6]}",
        template=TEMPLATE,
        instance_ids=instance_ids,
        recipients=(NewRecipient(phone=f"+55{prefix}9{i:08d}") for i in range(size)),
    )
    assert await stack.coordinator.start_campaign.remote(str(campaign.id))
    return campaign


async def finished(store: Store, campaign_id: uuid.UUID) -> Campaign | None:
    campaign = await store.campaigns.get(campaign_id)
    assert campaign is not None
    return campaign if campaign.status is CampaignStatus.COMPLETED else None


async def test_a_campaign_over_three_numbers_sends_everything_once_within_every_limit(
    stack: Stack, store: Store
) -> None:
    control = SandboxControl(stack.sandbox.url)
    await control.reset()
    ids = await register_all(store, stack, ["5001", "5002", "6001"])
    campaign = await run_campaign(store, stack, ids, 5_000, 11)
    done = await wait_until(lambda: finished(store, campaign.id), timeout_s=120)

    assert done.total_recipients == 5_000
    failed = await store.recipients.page(campaign.id, status=RecipientStatus.FAILED, limit=5)
    assert not failed, [(r.error_code, r.error_message, r.attempts) for r in failed]
    assert done.total_sent == 5_000
    assert done.total_failed == 0
    assert (done.pending, done.queued, done.sending) == (0, 0, 0)
    counts = await store.recipients.count_by_status(campaign.id)
    assert sum(counts.values()) == 5_000
    assert counts.get(RecipientStatus.PENDING, 0) == 0

    audit = await control.audit()
    assert audit["accepted"] == 5_000
    assert audit["duplicate_sends"] == 0
    assert audit["throughput_violations"] == 0
    assert audit["pair_violations"] == 0
    assert audit["tier_violations"] == 0
    per_number = audit["numbers"]
    # The small portfolio (TIER_250) shares 250 new recipients between its two numbers; the
    # large one takes the rest.
    small = sum(per_number.get(n, {}).get("accepted", 0) for n in ("5001", "5002"))
    assert small == 250
    assert per_number["6001"]["accepted"] == 4_750
    for number, limit in (("5001", 80), ("5002", 40), ("6001", 500)):
        if number in per_number:
            assert per_number[number]["max_received_per_s"] <= limit

    # Webhooks flow back through the API: delivered and read follow.
    async def delivered() -> Any:
        fresh = await store.campaigns.get(campaign.id)
        assert fresh is not None
        return fresh if fresh.total_delivered == 5_000 else None

    after = await wait_until(delivered, timeout_s=60)
    assert 0 < after.total_read < 5_000
    await control.aclose()


async def test_stats_show_every_instance_and_portfolio(stack: Stack, store: Store) -> None:
    ids = await register_all(store, stack, ["5001", "5002", "6001"])
    campaign = await run_campaign(store, stack, ids[2:], 50, 19)  # 6001 sends: its actor runs
    await wait_until(lambda: finished(store, campaign.id), timeout_s=60)
    stats = await wait_until(lambda: _stats_with_instances(stack), timeout_s=30)
    instances = {s["phone_number_id"]: s for s in stats["instances"].values()}
    assert instances["6001"]["configured_rate_mps"] == 500
    assert instances["6001"]["breaker"]["state"] == "closed"
    # A number without work shows its figures too, with no actor behind them.
    assert instances["5002"]["configured_rate_mps"] == 40
    assert instances["5002"]["state"] in {"stopped", "running"}
    # Nobody set biz-large's limit: registration read it from the Graph API.
    assert stats["portfolios"]["biz-large"]["daily_limit"] == 100_000
    assert "Infinity" not in str(stats)
    async with httpx.AsyncClient() as client:
        webhook = await client.get(
            f"{stack.api.url}/api/whatsapp/webhook",
            params={"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        )
    assert webhook.status_code == 403


async def _stats_with_instances(stack: Stack) -> dict[str, Any] | None:
    stats: dict[str, Any] = await stack.coordinator.stats.remote()
    ready = [s for s in stats["instances"].values() if "phone_number_id" in s]
    running = [s for s in ready if s.get("phone_number_id") == "6001" and "breaker" in s]
    return stats if len(ready) >= 3 and running and stats["portfolios"] else None


def test_ray_is_real() -> None:
    assert ray.is_initialized()


async def test_a_scheduled_campaign_starts_by_itself(stack: Stack, store: Store) -> None:
    ids = await register_all(store, stack, ["6001"])
    campaign = await operations.create_campaign(
        store,
        name=f"scheduled-{uuid.uuid4().hex[:6]}",
        template=TEMPLATE,
        instance_ids=ids,
        recipients=(NewRecipient(phone=f"+55129{i:08d}") for i in range(200)),
        scheduled_at=datetime.now(UTC) + timedelta(seconds=2),
    )
    assert campaign.status is CampaignStatus.SCHEDULED
    done = await wait_until(lambda: finished(store, campaign.id), timeout_s=60)
    assert done.started_at is not None
    assert campaign.scheduled_at is not None
    assert done.started_at >= campaign.scheduled_at
    assert done.total_sent == 200


async def test_pause_stops_routing_and_resume_finishes_the_campaign(
    stack: Stack, store: Store
) -> None:
    ids = await register_all(store, stack, ["6002"])  # 200 msg/s: 2,000 take ~10 s
    campaign = await run_campaign(store, stack, ids, 2_000, 13)
    await wait_until(lambda: _sent_at_least(store, campaign.id, 200), timeout_s=60)
    assert await stack.coordinator.pause_campaign.remote(str(campaign.id))

    async def drained() -> Campaign | None:  # what was already routed still goes out
        found = await store.campaigns.get(campaign.id)
        assert found is not None
        return found if found.in_flight == 0 else None

    paused = await wait_until(drained, timeout_s=60)
    assert paused.status is CampaignStatus.PAUSED
    assert paused.pending > 0
    # Nothing new while paused: the coordinator has gone round three more times and took
    # nobody of this campaign, and nothing more was sent.
    before: dict[str, Any] = await stack.coordinator.stats.remote()

    async def looked_again() -> dict[str, Any] | None:
        stats: dict[str, Any] = await stack.coordinator.stats.remote()
        return stats if stats["coordinator_ticks"] >= before["coordinator_ticks"] + 3 else None

    await wait_until(looked_again, timeout_s=30)
    still = await store.campaigns.get(campaign.id)
    assert still is not None
    assert still.total_sent == paused.total_sent
    assert (still.pending, still.in_flight) == (paused.pending, 0)
    assert await stack.coordinator.resume_campaign.remote(str(campaign.id))
    done = await wait_until(lambda: finished(store, campaign.id), timeout_s=90)
    assert done.total_sent == 2_000


async def _sent_at_least(store: Store, campaign_id: uuid.UUID, count: int) -> Campaign | None:
    campaign = await store.campaigns.get(campaign_id)
    assert campaign is not None
    return campaign if campaign.total_sent >= count else None
