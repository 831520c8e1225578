"""Windows, expiry and the rate cap where the coordinator routes: CoordinatorCore in-process
(a fake fleet, fake clocks), the real Postgres and Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dispatcher.engine.batch import Batch
from dispatcher.engine.config import EngineConfig
from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.engine.windows import waiting
from dispatcher.queue.streams import WorkQueue
from dispatcher.store import Store
from dispatcher.store.models import Campaign, CampaignStatus, NewRecipient, RecipientStatus
from tests.engine.conftest import TEMPLATE, MakeInstance
from tests.engine.fakes import FakeClock, FakeFleet

NEW_YORK = ZoneInfo("America/New_York")


def core(
    store: Store, queue: WorkQueue, clock: FakeClock, wall: Any = time.time
) -> CoordinatorCore:
    config = EngineConfig(batch_size=50, queued_batches_per_instance=100, tail_split=0)
    return CoordinatorCore(store, queue, FakeFleet(), config, clock, wall_clock=wall)


async def campaign(
    store: Store, instance_ids: list[uuid.UUID], addresses: list[str], **settings: Any
) -> Campaign:
    created = await store.campaigns.create(
        f"windows {uuid.uuid4().hex[:8]}", TEMPLATE, instance_ids, **settings
    )
    await store.recipients.ingest(created.id, [NewRecipient(phone=a) for a in addresses])
    return created


async def routed(queue: WorkQueue, instance_id: uuid.UUID) -> list[int]:
    jobs = await queue.read(instance_id, "test", count=1_000)
    for job in jobs:
        await queue.ack(instance_id, job.job_id)
    return [item.recipient_id for job in jobs for item in Batch.from_json(job.batch).items]


async def running_until(
    store: Store, instance_id: uuid.UUID, n: int, start: int, expires_in_s: float
) -> tuple[Campaign, datetime]:
    """A running campaign of ``n`` recipients that expires ``expires_in_s`` from now."""
    expires_at = datetime.now(UTC) + timedelta(seconds=expires_in_s)
    created = await campaign(store, [instance_id], phones(n, start), expires_at=expires_at)
    assert await store.campaigns.transition(created.id, CampaignStatus.RUNNING)
    return created, expires_at


def phones(n: int, start: int = 0) -> list[str]:
    return [f"+55119{start + i:08d}" for i in range(n)]


def hours_around(now: datetime, zone: ZoneInfo, before_h: int, after_h: int) -> dict[str, Any]:
    """A window every day from ``before_h`` hours before ``now`` to ``after_h`` after it, in
    ``zone`` (negative ``before_h``: it opens later)."""
    local = now.astimezone(zone)
    start = (local - timedelta(hours=before_h)).time().replace(microsecond=0)
    end = (local + timedelta(hours=after_h)).time().replace(microsecond=0)
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    return {"days": days, "start": start.isoformat(), "end": end.isoformat(), "timezone": zone.key}


async def test_a_closed_campaign_zone_window_routes_nothing_until_it_opens(
    store: Store, work_queue: WorkQueue, make_instance: MakeInstance
) -> None:
    instance = await make_instance()
    now = datetime.now(UTC)
    window = hours_around(now, NEW_YORK, -2, 3)  # opens in two hours, New York time
    wall = FakeClock(now.timestamp())
    created = await campaign(store, [instance.id], phones(30), send_window=window)
    coordinator = core(store, work_queue, FakeClock(), wall)

    assert await coordinator.start_campaign(created.id)
    await coordinator.tick()
    assert await routed(work_queue, instance.id) == []
    running = await store.campaigns.get(created.id)
    assert running is not None
    assert running.status is CampaignStatus.RUNNING
    # Not claimed at all: every row pending as it was, shown waiting until the opening.
    shown = waiting(running, None, now)
    assert shown.count == 30
    assert shown.until is not None
    assert timedelta(hours=1, minutes=59) < shown.until - now <= timedelta(hours=2)

    wall.advance(2 * 3600 + 1)
    await coordinator.tick()
    assert len(await routed(work_queue, instance.id)) == 30


async def test_recipients_outside_their_own_window_wait_with_not_before(
    store: Store, work_queue: WorkQueue, make_instance: MakeInstance
) -> None:
    instance = await make_instance()
    now = datetime.now(UTC)
    window = hours_around(now, NEW_YORK, 1, 1)  # open in New York now, two hours long
    window |= {"timezone": "recipient", "fallback_timezone": "America/New_York"}
    new_york = ["+12125550100", "+12125550101"]
    tokyo = ["+81312345678", "+81312345679"]  # 13 or 14 hours ahead: closed there
    unknown = ["+80012345678"]  # freephone, no zone: the campaign's (New York): open
    created = await campaign(store, [instance.id], new_york + tokyo + unknown, send_window=window)
    coordinator = core(store, work_queue, FakeClock())

    assert await coordinator.start_campaign(created.id)
    sent = await routed(work_queue, instance.id)
    page = await store.recipients.page(created.id, limit=10)
    by_phone = {r.phone: r for r in page}
    assert sorted(sent) == sorted(by_phone[p].id for p in new_york + unknown)
    for phone in tokyo:
        assert by_phone[phone].status is RecipientStatus.PENDING
    held = (await store.windows.waiting([created.id]))[created.id]
    assert held.count == 2
    assert held.until is not None
    opening = held.until.astimezone(ZoneInfo("Asia/Tokyo"))
    assert opening.time().isoformat() == window["start"]
    # A tick later they are not claimed again: the due index stops before them.
    await coordinator.tick()
    assert await routed(work_queue, instance.id) == []
    assert coordinator.windows.deferred == 2


async def test_the_rate_cap_holds_routing_to_its_minute(
    store: Store, work_queue: WorkQueue, make_instance: MakeInstance
) -> None:
    instance = await make_instance(throughput_mps=80)
    created = await campaign(store, [instance.id], phones(500, 1_000), max_per_minute=120)
    clock = FakeClock()
    coordinator = core(store, work_queue, clock)

    assert await coordinator.start_campaign(created.id)
    assert await routed(work_queue, instance.id) == []  # the bucket starts empty
    total = 0
    for _ in range(600):  # a minute of 0.1 s rounds
        clock.advance(0.1)
        await coordinator.tick()
        total += len(await routed(work_queue, instance.id))
    # 2/s for 60 s, plus at most one burst (batch_seconds of the cap: 4).
    assert 116 <= total <= 120 + 4


async def test_past_its_expiry_unsent_recipients_expire_and_the_campaign_completes(
    store: Store, work_queue: WorkQueue, make_instance: MakeInstance
) -> None:
    instance = await make_instance()
    created, expires_at = await running_until(store, instance.id, 40, 2_000, 2.0)
    claim = await store.recipients.claim_pending(created.id, 10)
    assert claim is not None  # 10 queued in a batch not handed to a sender yet

    wall_before = FakeClock(time.time())
    coordinator = core(store, work_queue, FakeClock(), wall_before)
    assert await coordinator.windows.expire([created]) == set()  # not yet
    await asyncio.sleep((expires_at - datetime.now(UTC)).total_seconds() + 0.05)
    coordinator = core(store, work_queue, FakeClock())
    assert await store.recipients.claim_pending(created.id, 10) is None  # nothing new
    assert await store.campaigns.stopped([created.id]) == {created.id}  # senders drop it
    await coordinator.tick()
    await coordinator.complete_settled()

    done = await store.campaigns.get(created.id)
    assert done is not None
    assert done.status is CampaignStatus.COMPLETED
    assert done.total_expired == 40
    assert (done.pending, done.queued, done.sending, done.total_sent) == (0, 0, 0, 0)
    expired = await store.recipients.page(created.id, status=RecipientStatus.EXPIRED, limit=50)
    assert len(expired) == 40
    assert "expires_at" in (expired[0].error_message or "")
    # The batch claimed before: its sender's hand-over gets nothing to send.
    handed = await store.recipients.hand_over(
        claim.claim_id, [r.id for r in claim.recipients], instance.id
    )
    assert handed.moved == []


async def test_a_paused_campaign_past_its_expiry_expires_and_completes_when_resumed(
    store: Store, work_queue: WorkQueue, make_instance: MakeInstance
) -> None:
    instance = await make_instance()
    created, expires_at = await running_until(store, instance.id, 30, 3_000, 1.0)
    assert await store.campaigns.transition(created.id, CampaignStatus.PAUSED)
    await asyncio.sleep((expires_at - datetime.now(UTC)).total_seconds() + 0.05)
    coordinator = core(store, work_queue, FakeClock())
    await coordinator.tick()

    paused = await store.campaigns.get(created.id)
    assert paused is not None
    # Its rows could never be sent: progress says so while it is still paused.
    assert (paused.status, paused.total_expired, paused.pending) == (CampaignStatus.PAUSED, 30, 0)
    assert await routed(work_queue, instance.id) == []
    assert await store.campaigns.transition(created.id, CampaignStatus.RUNNING)
    await coordinator.tick()
    await coordinator.complete_settled()
    done = await store.campaigns.get(created.id)
    assert done is not None
    assert (done.status, done.total_expired) == (CampaignStatus.COMPLETED, 30)
