"""The coordinator acts on a send and on the last result at once, and balances a campaign's
tail across numbers of different speeds: CoordinatorCore in-process (fake fleet, fake clock,
real Postgres and Redis), asserting on what it routed, never on how long it took."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import pytest

from dispatcher.engine.batch import Batch
from dispatcher.engine.config import EngineConfig
from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.meta.tiers import MessagingTier
from dispatcher.queue.streams import WorkQueue
from dispatcher.store import Store
from dispatcher.store.models import CampaignStatus, Instance, SendOutcome, SendResult
from tests.engine.conftest import MakeCampaign, MakeInstance
from tests.engine.fakes import FakeClock, FakeFleet


def core(store: Store, queue: WorkQueue, fleet: FakeFleet, **config: object) -> CoordinatorCore:
    return CoordinatorCore(store, queue, fleet, EngineConfig(**config), FakeClock())  # type: ignore[arg-type]


async def waiting(queue: WorkQueue, instance_id: UUID) -> int:
    return (await queue.stream(instance_id).stats()).pending


async def test_send_routes_the_first_batches_before_any_tick(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    slow = await make_instance()
    fast = await make_instance(slow.business_id, throughput_mps=200)
    await store.portfolios.set_override(slow.business_id, MessagingTier.TIER_UNLIMITED)
    campaign = await make_campaign([slow, fast], 6_000)
    coordinator = core(store, work_queue, FakeFleet())

    assert await coordinator.start_campaign(campaign.id)
    assert coordinator.ticks == 0
    sizes = {}
    for instance in (slow, fast):
        jobs = await work_queue.read(instance.id, "actor", count=10)
        sizes[instance.id] = [len(Batch.from_json(j.batch).items) for j in jobs]
    assert sizes == {slow.id: [160, 160], fast.id: [400, 400]}  # 2 s of each number's sends

    # A campaign that is not running (already started) is not routed again by a send.
    assert not await coordinator.start_campaign(campaign.id)
    assert await waiting(work_queue, slow.id) == await waiting(work_queue, fast.id) == 0


async def test_a_standby_coordinator_routes_nothing_on_a_send(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    instance = await make_instance()
    campaign = await make_campaign([instance], 100)
    clock = FakeClock()
    active = CoordinatorCore(
        store, work_queue, FakeFleet(), EngineConfig(), clock, holder=f"active-{campaign.id}"
    )
    standby = CoordinatorCore(
        store, work_queue, FakeFleet(), EngineConfig(), clock, holder=f"standby-{campaign.id}"
    )
    assert await active.keep_lease()
    try:
        assert not await standby.keep_lease()
        assert await standby.start_campaign(campaign.id)  # the status is Postgres's
        assert await waiting(work_queue, instance.id) == 0
    finally:
        assert active.lease is not None
        await active.lease.release()


async def test_completion_follows_the_last_result_without_a_tick(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    instance = await make_instance()
    campaign = await make_campaign([instance], 20)
    coordinator = core(store, work_queue, FakeFleet(), queued_batches_per_instance=10)
    await coordinator.start_campaign(campaign.id)  # routes all 20
    await coordinator.tick()  # finds nothing more to claim: the campaign is all routed
    ticks = coordinator.ticks
    jobs = await work_queue.read(instance.id, "actor", count=10)
    items = [(Batch.from_json(j.batch), i) for j in jobs for i in Batch.from_json(j.batch).items]
    for batch in {id(b): b for b, _ in items}.values():
        await store.recipients.mark_sending(
            batch.claim_id, [i.recipient_id for i in batch.items], instance.id
        )
    now = await store.pool.fetchval("SELECT now()")
    ids = [i.recipient_id for _, i in items]
    sent = [SendResult(i, SendOutcome.SENT, now, instance.id, wamid=f"wamid.{i}") for i in ids]

    await store.outcomes.apply_results(sent[:-1])
    assert await coordinator.complete_settled() == 0  # one is still being sent
    await store.outcomes.apply_results(sent[-1:])
    assert await coordinator.complete_settled() == 1
    assert coordinator.ticks == ticks
    found = await store.campaigns.get(campaign.id)
    assert found is not None
    assert found.status is CampaignStatus.COMPLETED
    assert await coordinator.complete_settled() == 0  # checked no more once completed


@dataclass
class Number:
    """A sender as the coordinator sees it from outside: reads a batch whenever it holds
    less than ``batch_seconds`` of work (as the instance actor does) and sends at its rate."""

    instance: Instance
    rate: float
    held: float = 0.0
    done_at: float = 0.0

    def held_s(self) -> float:
        return self.held / self.rate


async def run_campaign(
    store: Store,
    queue: WorkQueue,
    numbers: list[Number],
    campaign_id: UUID,
    config: EngineConfig,
    step_s: float = 0.05,
) -> tuple[float, dict[str, float]]:
    """Drive the coordinator and simulated senders on simulated time: when the campaign
    ended, and each number's held work (seconds of its own rate, stream included) at the
    moment the last recipient was routed."""
    fleet = FakeFleet(rates={n.instance.id: n.rate for n in numbers})
    coordinator = CoordinatorCore(store, queue, fleet, config, FakeClock())
    await coordinator.start_campaign(campaign_id)
    now, at_last_route = 0.0, dict[str, float]()
    ticks_per_round = round(config.route_interval_s / step_s)
    for step in range(100_000):
        if step % ticks_per_round == 0:
            await coordinator.tick()
        for number in numbers:
            if number.held < number.rate * config.batch_seconds:
                jobs = await queue.read(number.instance.id, "sim", count=1)
                for job in jobs:
                    number.held += len(Batch.from_json(job.batch).items)
                    await queue.ack(number.instance.id, job.job_id)
        campaign = await store.campaigns.get(campaign_id)
        assert campaign is not None
        if campaign.pending == 0 and not at_last_route:
            # Everything is routed: what each number must still send is settled (taking
            # its waiting batches now changes no finish time).
            for number in numbers:
                jobs = await queue.read(number.instance.id, "sim", count=100)
                for job in jobs:
                    number.held += len(Batch.from_json(job.batch).items)
                    await queue.ack(number.instance.id, job.job_id)
                at_last_route[number.instance.phone_number_id] = number.held_s()
        now += step_s
        for number in numbers:
            if number.held > 0:
                sent = min(number.held, number.rate * step_s)
                number.held -= sent
                number.done_at = now - step_s + sent / number.rate
        if at_last_route and all(n.held == 0 for n in numbers):
            return max(n.done_at for n in numbers), at_last_route
    raise AssertionError("the campaign never ended")


@pytest.mark.parametrize(
    ("tail_split", "recipients"),
    [(4, 2_800), (4, 2_950), (4, 3_100), (4, 3_333), (0, 2_950), (0, 3_100)],
)
async def test_the_tail_is_shared_by_rate_so_the_numbers_finish_together(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
    tail_split: int,
    recipients: int,
) -> None:
    slow = await make_instance(throughput_mps=80)
    fast = await make_instance(slow.business_id, throughput_mps=200)
    await store.portfolios.set_override(slow.business_id, MessagingTier.TIER_UNLIMITED)
    campaign = await make_campaign([slow, fast], recipients)
    numbers = [Number(slow, 80.0), Number(fast, 200.0)]
    config = EngineConfig(tail_split=tail_split)

    ended, held = await run_campaign(store, work_queue, numbers, campaign.id, config)

    ideal = recipients / (80 + 200)
    spread = max(held.values()) - min(held.values())
    finish_gap = abs(numbers[0].done_at - numbers[1].done_at)
    if tail_split:
        # Routing ends with each number holding the same time's worth of work, within a
        # small batch; the slow one holds no big last batch while the fast one runs dry.
        assert spread < 0.15, held
        assert finish_gap < 0.15
        assert ideal / ended > 0.99
    else:  # whole 2 s batches to the end: what the tail sizing is there to avoid
        assert spread > 1.0, held
        assert ideal / ended < 0.95
