"""CoordinatorCore in-process: a fake fleet and a fake clock, the real Postgres and Redis.

Each test drives ``tick()`` by hand and reads what reached the instances' streams.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from uuid import UUID

from dispatcher.engine.batch import Batch
from dispatcher.engine.config import EngineConfig
from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.meta.error_codes import ErrorClass
from dispatcher.meta.tiers import MessagingTier
from dispatcher.policies.messaging_limit import DAY_S
from dispatcher.queue.streams import Job, WorkQueue
from dispatcher.store import Store
from dispatcher.store.models import CampaignStatus, RecipientStatus, SendOutcome, SendResult
from tests.engine.conftest import MakeCampaign, MakeInstance
from tests.engine.fakes import FakeClock, FakeFleet


def core(
    store: Store, queue: WorkQueue, fleet: FakeFleet, clock: FakeClock, **config: object
) -> CoordinatorCore:
    # Whole batches to the end (no tail sizing, tests/engine/test_routing_latency.py): the
    # counts below follow batch_size alone.
    tunables = {"batch_size": 10, "queued_batches_per_instance": 2, "tail_split": 0, **config}
    return CoordinatorCore(store, queue, fleet, EngineConfig(**tunables), clock)  # type: ignore[arg-type]


async def waiting(queue: WorkQueue, instance_id: UUID) -> int:
    return (await queue.stream(instance_id).stats()).pending


async def take(queue: WorkQueue, instance_id: UUID) -> list[int]:
    """Read and ack every batch waiting for ``instance_id``: the recipient ids they carried."""
    jobs: list[Job] = await queue.read(instance_id, "test-consumer", count=100)
    for job in jobs:
        assert await queue.ack(instance_id, job.job_id)
    return [item.recipient_id for job in jobs for item in Batch.from_json(job.batch).items]


async def test_routing_keeps_queued_batches_per_instance(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    instance = await make_instance()
    campaign = await make_campaign([instance], 100)
    fleet, clock = FakeFleet(), FakeClock()
    coordinator = core(store, work_queue, fleet, clock, queued_batches_per_instance=3)
    assert fleet.ensured == []  # no actor before work is routed to the number
    assert await coordinator.start_campaign(campaign.id)  # a send routes at once
    assert await waiting(work_queue, instance.id) == 3
    assert fleet.ensured == [instance.id]

    await coordinator.tick()  # nothing was read: nothing more is routed
    assert await waiting(work_queue, instance.id) == 3
    await coordinator.tick()
    assert await waiting(work_queue, instance.id) == 3

    [job] = await work_queue.read(instance.id, "actor", count=1)
    await coordinator.tick()
    assert await waiting(work_queue, instance.id) == 3
    assert len(Batch.from_json(job.batch).items) == 10
    counts = await store.recipients.count_by_status(campaign.id)
    assert counts[RecipientStatus.QUEUED] == 40
    assert counts[RecipientStatus.PENDING] == 60


async def test_batch_size_follows_the_rate_the_actor_reports(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    instance = await make_instance()
    campaign = await make_campaign([instance], 200)
    fleet = FakeFleet(rates={instance.id: 20.0})  # cut from 80: 2 s of it is 40
    coordinator = core(store, work_queue, fleet, FakeClock(), batch_size=500)
    await coordinator.start_campaign(campaign.id)
    await coordinator.tick()
    jobs = await work_queue.read(instance.id, "actor", count=10)
    assert [len(Batch.from_json(j.batch).items) for j in jobs] == [40, 40]


async def test_the_portfolio_gate_defers_over_the_limit_until_the_window_moves(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    first = await make_instance()
    second = await make_instance(first.business_id)  # the same portfolio: one limit
    await store.portfolios.set_override(first.business_id, MessagingTier.TIER_250)
    campaign = await make_campaign([first, second], 300)
    clock = FakeClock()
    coordinator = core(
        store, work_queue, FakeFleet(), clock, batch_size=50, queued_batches_per_instance=10
    )
    await coordinator.start_campaign(campaign.id)

    await coordinator.tick()
    routed = await take(work_queue, first.id) + await take(work_queue, second.id)
    assert len(routed) == len(set(routed)) == 250
    assert coordinator.deferred_recipients > 0
    stats = coordinator.portfolio_stats()[first.business_id]
    assert (stats["daily_unique_used"], stats["daily_limit"]) == (250, 250)
    assert stats["blocked_for_s"] > DAY_S - 60

    clock.advance(DAY_S / 2)  # still inside the window: nobody else fits
    await coordinator.tick()
    assert await take(work_queue, first.id) + await take(work_queue, second.id) == []
    counts = await store.recipients.count_by_status(campaign.id)
    assert counts[RecipientStatus.PENDING] == 50

    clock.advance(DAY_S / 2 + EngineConfig().gate_margin_s + 1)  # the window moved on
    await coordinator.tick()
    rest = await take(work_queue, first.id) + await take(work_queue, second.id)
    assert len(rest) == 50
    assert not set(rest) & set(routed)
    counts = await store.recipients.count_by_status(campaign.id)
    assert (counts[RecipientStatus.PENDING], counts[RecipientStatus.QUEUED]) == (0, 300)


async def test_an_unusable_instance_is_drained_and_its_work_rerouted(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    down, up = await make_instance(), await make_instance()
    campaign = await make_campaign([down, up], 40)
    fleet = FakeFleet()
    coordinator = core(store, work_queue, fleet, FakeClock())
    await coordinator.start_campaign(campaign.id)
    await coordinator.tick()
    assert await waiting(work_queue, down.id) == await waiting(work_queue, up.id) == 2
    first_half = await take(work_queue, up.id)

    fleet.unusable.add(down.id)
    await coordinator.tick()
    stream = await work_queue.stream(down.id).stats()
    assert (stream.pending, stream.processing) == (0, 0)  # given back, not left to rot
    rerouted = await take(work_queue, up.id)
    assert len(rerouted) == 20
    assert sorted(first_half + rerouted) == sorted(set(first_half + rerouted))
    counts = await store.recipients.count_by_status(campaign.id)
    assert (counts[RecipientStatus.PENDING], counts[RecipientStatus.QUEUED]) == (0, 40)
    await coordinator.tick()  # nothing left to route, and nothing goes to the unusable one
    assert await waiting(work_queue, down.id) == 0


async def test_a_portfolio_hold_stops_routing_to_every_number_of_the_portfolio(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    held, sibling = await make_instance(), None
    sibling = await make_instance(held.business_id)
    elsewhere = await make_instance()
    campaign = await make_campaign([held, sibling, elsewhere], 200)
    fleet = FakeFleet(errors={held.id: ErrorClass.PORTFOLIO_HOLD.value})
    coordinator = core(store, work_queue, fleet, FakeClock())
    await coordinator.start_campaign(campaign.id)

    for _ in range(3):
        await coordinator.tick()
        await take(work_queue, elsewhere.id)
    assert await waiting(work_queue, held.id) == 0
    assert await waiting(work_queue, sibling.id) == 0  # the hold is the portfolio's

    # The operator re-registered the number and its replaced actor no longer reports it.
    del fleet.errors[held.id]
    await coordinator.refresh_instance(held.id)
    await coordinator.tick()
    assert await waiting(work_queue, held.id) == 2
    assert await waiting(work_queue, sibling.id) == 2


async def test_a_campaign_completes_only_once_every_recipient_is_settled(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    instance = await make_instance()
    campaign = await make_campaign([instance], 20)
    coordinator = core(store, work_queue, FakeFleet(), FakeClock())
    await coordinator.start_campaign(campaign.id)
    await coordinator.tick()
    jobs = await work_queue.read(instance.id, "actor", count=10)
    batches = [Batch.from_json(job.batch) for job in jobs]
    ids = [item.recipient_id for batch in batches for item in batch.items]
    for batch in batches:
        await store.recipients.mark_sending(
            batch.claim_id, [i.recipient_id for i in batch.items], instance.id
        )

    now = await store.pool.fetchval("SELECT now()")
    await store.outcomes.apply_results(
        [SendResult(i, SendOutcome.SENT, now, instance.id, wamid=f"wamid.{i}") for i in ids[:-1]]
    )
    await coordinator.tick()
    found = await store.campaigns.get(campaign.id)
    assert found is not None
    assert found.status is CampaignStatus.RUNNING  # one message is still being sent

    await store.outcomes.apply_results(
        [SendResult(ids[-1], SendOutcome.FAILED, now, instance.id, error_code=131026)]
    )
    await coordinator.tick()
    found = await store.campaigns.get(campaign.id)
    assert found is not None
    assert found.status is CampaignStatus.COMPLETED
    assert (found.total_sent, found.total_failed) == (19, 1)


async def test_a_scheduled_campaign_starts_by_the_database_clock_not_the_engine_clock(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    instance = await make_instance()
    later = await make_campaign([instance], 10)
    soon = await make_campaign([instance], 10, start=100)
    db_now = await store.pool.fetchval("SELECT now()")
    assert await store.campaigns.reschedule(later.id, db_now + timedelta(hours=1))
    assert await store.campaigns.reschedule(soon.id, db_now + timedelta(seconds=1.5))
    clock = FakeClock()
    coordinator = core(store, work_queue, FakeFleet(), clock)

    # The engine's clock is for rates and windows; "due" is the database's: moving the fake
    # clock a day starts nothing.
    clock.advance(DAY_S)
    await coordinator.tick()
    for campaign in (later, soon):
        found = await store.campaigns.get(campaign.id)
        assert found is not None
        assert found.status is CampaignStatus.SCHEDULED

    deadline = time.monotonic() + 20  # real time: the database's clock must pass the time
    while (found := await store.campaigns.get(soon.id)) and found.status is not (
        CampaignStatus.RUNNING
    ):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
        await coordinator.tick()
    assert found.started_at is not None
    assert found.scheduled_at is not None
    assert found.started_at >= found.scheduled_at
    assert await waiting(work_queue, instance.id) == 1  # routed in the tick that started it
    found_later = await store.campaigns.get(later.id)
    assert found_later is not None
    assert found_later.status is CampaignStatus.SCHEDULED


async def test_pause_stops_routing_and_resume_routes_again(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    instance = await make_instance()
    campaign = await make_campaign([instance], 100)
    coordinator = core(store, work_queue, FakeFleet(), FakeClock())
    await coordinator.start_campaign(campaign.id)
    await coordinator.tick()
    assert len(await take(work_queue, instance.id)) == 20

    assert await coordinator.pause_campaign(campaign.id)
    for _ in range(3):
        await coordinator.tick()
    assert await waiting(work_queue, instance.id) == 0
    assert (await store.recipients.count_by_status(campaign.id))[RecipientStatus.PENDING] == 80

    assert await coordinator.start_campaign(campaign.id)  # resume
    await coordinator.tick()
    assert await waiting(work_queue, instance.id) == 2
