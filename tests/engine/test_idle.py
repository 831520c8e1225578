"""Actors that come and go with the work: the coordinator's sweep (a fake fleet, a fake clock,
real Postgres and Redis) and the worker's own idle stop (the sandbox over real HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID

import pytest

from dispatcher.engine.config import EngineConfig
from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.engine.instance import InstanceWorker
from dispatcher.meta.client import MetaClient
from dispatcher.queue.streams import WorkQueue
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from dispatcher.store.models import (
    Campaign,
    CampaignStatus,
    Instance,
    InstanceStatus,
    RecipientStatus,
)
from tests.engine.conftest import MakeCampaign, MakeInstance
from tests.engine.fakes import FakeClock, FakeFleet, run_clock, wait_for

IDLE_S = 300.0
CHECK_S = 5.0


@pytest.fixture
async def make_campaign(
    store: Store, make_campaign: MakeCampaign
) -> AsyncIterator[Callable[..., Awaitable[Campaign]]]:
    """Campaigns cancelled after the test: the engine tests share a database, and a running
    campaign left behind would be routed by the next test's coordinator."""
    made: list[Campaign] = []

    async def make(*args: object, **kwargs: object) -> Campaign:
        campaign = await make_campaign(*args, **kwargs)
        made.append(campaign)
        return campaign

    yield make
    for campaign in made:
        await store.campaigns.transition(campaign.id, CampaignStatus.CANCELLED)


def core(store: Store, queue: WorkQueue, fleet: FakeFleet, clock: FakeClock) -> CoordinatorCore:
    config = EngineConfig(
        batch_size=10,
        queued_batches_per_instance=2,
        instance_idle_stop_s=IDLE_S,
        idle_check_interval_s=CHECK_S,
    )
    return CoordinatorCore(store, queue, fleet, config, clock)  # type: ignore[arg-type]


async def take_all(queue: WorkQueue, instance_id: UUID, *, ack: bool = True) -> list[str]:
    jobs = await queue.read(instance_id, "test-actor", count=100)
    for job in jobs if ack else ():
        assert await queue.ack(instance_id, job.job_id)
    return [job.job_id for job in jobs]


class Mine:
    """What the fake fleet did for this test's numbers (the engine tests share a database:
    another test's running campaign may be routed too)."""

    def __init__(self, fleet: FakeFleet, *instances: Instance) -> None:
        self._fleet = fleet
        self._ids = {i.id for i in instances}

    def started(self) -> list[UUID]:
        return [i for i in self._fleet.ensured if i in self._ids]

    def stops(self) -> list[tuple[UUID, float]]:
        return [s for s in self._fleet.idle_stops if s[0] in self._ids]

    def running(self) -> set[UUID]:
        return self._fleet.running() & self._ids


async def next_round(coordinator: CoordinatorCore, clock: FakeClock) -> None:
    """One tick after the sweep's interval: the sweep looks again."""
    clock.advance(CHECK_S)
    await coordinator.tick()


async def test_only_a_number_with_work_gets_an_actor_and_it_stops_once_idle(
    store: Store, work_queue: WorkQueue, make_instance: MakeInstance, make_campaign: MakeCampaign
) -> None:
    numbers = [await make_instance() for _ in range(5)]
    campaign = await make_campaign(numbers[:1], 20)
    fleet, clock = FakeFleet(), FakeClock()
    coordinator = core(store, work_queue, fleet, clock)
    mine = Mine(fleet, *numbers)
    await coordinator.start_campaign(campaign.id)

    await coordinator.tick()
    assert mine.started() == [numbers[0].id]  # the four others cost nothing
    await next_round(coordinator, clock)
    assert mine.stops() == []  # its batches still wait on its stream
    assert len(await take_all(work_queue, numbers[0].id)) == 2

    await next_round(coordinator, clock)
    assert mine.stops() == [(numbers[0].id, IDLE_S)]  # the actor decides, given the period
    assert mine.running() == set()
    assert coordinator.idle.stopped >= 1

    again = await make_campaign(numbers[:1], 5, start=100)
    await coordinator.start_campaign(again.id)
    await coordinator.tick()
    assert mine.started() == [numbers[0].id, numbers[0].id]  # a new incarnation for new work


async def test_an_actor_stays_while_work_is_held_or_a_send_of_its_is_in_doubt(
    store: Store, work_queue: WorkQueue, make_instance: MakeInstance, make_campaign: MakeCampaign
) -> None:
    instance = await make_instance()
    campaign = await make_campaign([instance], 20)
    fleet, clock = FakeFleet(), FakeClock()
    coordinator = core(store, work_queue, fleet, clock)
    mine = Mine(fleet, instance)
    await coordinator.start_campaign(campaign.id)
    await coordinator.tick()

    held = await take_all(work_queue, instance.id, ack=False)  # delivered, not acked
    assert len(held) == 2
    await next_round(coordinator, clock)
    assert mine.stops() == []
    for job_id in held:
        assert await work_queue.ack(instance.id, job_id)

    row = await store.pool.fetchval(
        "UPDATE whatsapp_campaign_recipients SET status = 'sending', instance_id = $2, "
        "in_doubt_at = now() WHERE id = (SELECT min(id) FROM whatsapp_campaign_recipients "
        "WHERE campaign_id = $1) RETURNING id",
        campaign.id,
        instance.id,
    )
    await next_round(coordinator, clock)
    assert mine.stops() == []  # a send of this number is in doubt
    assert await store.in_doubt.of_instance(instance.id) == 1

    await store.pool.execute(
        "UPDATE whatsapp_campaign_recipients SET status = 'sent', in_doubt_at = NULL WHERE id = $1",
        row,
    )
    fleet.busy.add(instance.id)  # the actor itself says it sent lately
    await next_round(coordinator, clock)
    assert mine.running() == {instance.id}
    fleet.busy.clear()
    await next_round(coordinator, clock)
    assert mine.running() == set()


async def test_work_waiting_for_a_number_without_an_actor_starts_one(
    store: Store, work_queue: WorkQueue, make_instance: MakeInstance, make_campaign: MakeCampaign
) -> None:
    instance, stopped = await make_instance(), await make_instance()
    campaign = await make_campaign([instance], 20)
    first = core(store, work_queue, FakeFleet(), FakeClock())
    await first.start_campaign(campaign.id)
    await first.tick()  # two batches routed, then this coordinator went away
    await work_queue.enqueue(stopped.id, {"left": "by an actor Meta stopped"})
    await store.instances.set_status(stopped.id, InstanceStatus.ERROR, "stopped: 190")

    fleet = FakeFleet()
    second = core(store, work_queue, fleet, FakeClock())
    await second.tick()  # nothing to route (the stream is full): the sweep finds the work
    assert Mine(fleet, instance, stopped).started() == [instance.id]
    assert second.idle.started >= 1


async def test_an_actor_left_stopping_with_work_waiting_is_replaced(
    store: Store, work_queue: WorkQueue, make_instance: MakeInstance, make_campaign: MakeCampaign
) -> None:
    """An idle stop whose answer was lost leaves an actor that reads nothing ("stopping",
    unusable): once work waits for its number, the sweep finishes it and starts a new one."""
    instance = await make_instance()
    fleet = FakeFleet()
    fleet.running_ids.add(instance.id)
    fleet.unusable.add(instance.id)  # its stats say stopping
    await work_queue.enqueue(instance.id, {"routed": "after the stop began"})
    coordinator = core(store, work_queue, fleet, FakeClock())

    async def stopped_then_usable(instance_id: UUID, idle_s: float) -> bool:
        fleet.running_ids.discard(instance_id)
        fleet.unusable.discard(instance_id)  # its stats now say stopped
        fleet.idle_stops.append((instance_id, idle_s))
        return True

    fleet.stop_idle = stopped_then_usable  # type: ignore[method-assign]
    await coordinator.idle.sweep([instance])
    assert [i for i, _ in fleet.idle_stops] == [instance.id]
    assert fleet.ensured == [instance.id]  # a new actor takes the work


# -- the worker's own idle stop ---------------------------------------------------------


@pytest.fixture
async def sandbox_instance(make_instance: MakeInstance) -> Instance:
    return await make_instance(
        "biz-large", phone_number_id="2001", token="token-2001", throughput_mps=1000
    )


def worker(
    instance: Instance, store: Store, queue: WorkQueue, client: MetaClient, clock: FakeClock
) -> InstanceWorker:
    return InstanceWorker(
        instance_id=instance.id,
        phone_number_id=instance.phone_number_id,
        throughput_mps=1000,
        token="token-2001",
        store=store,
        queue=queue,
        client=client,
        clock=clock,
    )


async def test_a_worker_stops_only_when_idle_and_its_successor_sends_the_rest_once(
    store: Store,
    work_queue: WorkQueue,
    sandbox_instance: Instance,
    make_campaign: MakeCampaign,
    client: MetaClient,
    sandbox: SandboxControl,
) -> None:
    instance = sandbox_instance
    campaign = await make_campaign([instance], 20, start=7000)
    coordinator = core(store, work_queue, FakeFleet(), FakeClock())
    await coordinator.start_campaign(campaign.id)
    await coordinator.tick()  # two batches of 10

    clock = FakeClock()
    first = worker(instance, store, work_queue, client, clock)
    task = asyncio.create_task(first.run())
    await wait_for(lambda: first.pipeline.backlog() > 0)
    clock.advance(IDLE_S + 1)
    # Checked before the pacer could move: messages wait in its hands.
    assert not await first.stop_if_idle(IDLE_S)
    await run_clock(clock, lambda: first.written == 20)
    await wait_for(lambda: first.stats()["batches_held"] == 0)
    assert not await first.stop_if_idle(IDLE_S)  # it just sent
    clock.advance(IDLE_S)
    assert await first.stop_if_idle(IDLE_S)
    await asyncio.wait_for(task, 30)

    more = await make_campaign([instance], 10, start=8000)
    await coordinator.start_campaign(more.id)
    await coordinator.tick()
    second = worker(instance, store, work_queue, client, clock)
    task = asyncio.create_task(second.run())
    try:
        await run_clock(clock, lambda: second.written == 10)
    finally:
        second.stop()
        await asyncio.wait_for(task, 30)
    assert first.epoch is not None
    assert second.epoch == first.epoch + 1  # a new incarnation
    for sent, size in ((campaign, 20), (more, 10)):
        counts = await store.recipients.count_by_status(sent.id)
        assert counts[RecipientStatus.SENT] == size
    audit = await sandbox.audit()
    assert (audit["accepted"], audit["duplicate_sends"]) == (30, 0)
