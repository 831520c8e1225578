"""Rows go back to pending only from whoever has them; a stopping worker finishes its holds.

Real Redis stream, real Postgres, the sandbox over real HTTP (see test_instance_worker.py).
"""

from __future__ import annotations

import asyncio

import asyncpg

from dispatcher.engine.batch import Batch
from dispatcher.engine.config import EngineConfig
from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.engine.pipeline import CampaignHold
from dispatcher.meta.client import MetaClient
from dispatcher.queue.streams import WorkQueue
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from dispatcher.store.models import CampaignStatus, RecipientStatus
from tests.engine.conftest import MakeCampaign, MakeInstance
from tests.engine.fakes import FakeClock, FakeFleet, wait_for
from tests.engine.test_instance_worker import (
    has_lock_waiter,
    routed,
    sandbox_number,
    settled,
    worker,
    worker_store,  # noqa: F401  (fixture)
)

R = RecipientStatus


async def _statuses(store: Store, ids: list[int]) -> list[RecipientStatus]:
    found = await store.recipients.statuses(ids)
    return [found[i] for i in ids]


async def test_a_held_campaigns_batch_is_fenced_before_it_is_given_back(
    store: Store,
    worker_store: Store,  # noqa: F811
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
    client: MetaClient,
    sandbox: SandboxControl,
) -> None:
    instance = await sandbox_number(make_instance)
    campaign = await make_campaign([instance], 10, start=5000)
    await routed(store, work_queue, instance, campaign, 10)
    # A predecessor took six of the batch (Meta may have accepted them) and was killed
    # before its results were written; then the campaign was held.
    [job] = await work_queue.read(instance.id, "dead-actor", count=1)
    batch = Batch.from_json(job.batch)
    ids = [item.recipient_id for item in batch.items]
    epoch = await store.epochs.start(instance.id)
    assert await store.recipients.mark_sending(batch.claim_id, ids[:6], instance.id, epoch)
    assert await store.campaigns.hold(campaign.id, "template paused", "template")

    running = worker(instance, worker_store, work_queue, client, flush_interval_s=0.1)
    task = asyncio.create_task(running.run())
    try:
        await wait_for(lambda: settled(work_queue, instance.id))
    finally:
        running.stop()
        await asyncio.wait_for(task, 30)
    # The six stay in doubt (never back to pending, so never sent twice on release); only
    # the four nobody started go back.
    assert running.in_doubt_found == 6
    assert await _statuses(store, ids) == [R.SENDING] * 6 + [R.PENDING] * 4
    in_doubt = await store.pool.fetchval(
        "SELECT count(*) FROM whatsapp_campaign_recipients "
        "WHERE id = ANY($1::bigint[]) AND in_doubt_at IS NOT NULL",
        ids,
    )
    assert in_doubt == 6
    assert await sandbox.requests() == []


async def test_a_drain_leaves_rows_a_sender_took_from_another_copy(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    instance = await make_instance()
    campaign = await make_campaign([instance], 8, start=6000)
    await routed(store, work_queue, instance, campaign, 8)
    # A sender reads the batch and starts it; a copy of it (enqueued again) waits behind.
    [job] = await work_queue.read(instance.id, "sender", count=1)
    batch = Batch.from_json(job.batch)
    ids = [item.recipient_id for item in batch.items]
    epoch = await store.epochs.start(instance.id)
    assert await store.recipients.mark_sending(batch.claim_id, ids[:5], instance.id, epoch)
    await work_queue.enqueue(instance.id, job.batch)

    core = CoordinatorCore(store, work_queue, FakeFleet(), EngineConfig(), FakeClock())
    # The drain gives back the three still queued, not the five in the sender's hands.
    assert await core.drain(instance.id) == 3
    assert await _statuses(store, ids) == [R.SENDING] * 5 + [R.PENDING] * 3


async def test_a_stopping_worker_finishes_writing_a_campaign_hold(
    store: Store,
    worker_store: Store,  # noqa: F811
    engine_url: str,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
    client: MetaClient,
) -> None:
    instance = await sandbox_number(make_instance)
    campaign = await make_campaign([instance], 0)
    assert await store.campaigns.transition(campaign.id, CampaignStatus.RUNNING)
    running = worker(instance, worker_store, work_queue, client)
    task = asyncio.create_task(running.run())
    locker = await asyncpg.connect(engine_url)
    try:
        # Postgres is slow (the campaign row is locked): the hold's write waits on it
        # while the worker is told to stop.
        await locker.execute("BEGIN")
        await locker.execute(
            "SELECT id FROM whatsapp_campaigns WHERE id = $1 FOR UPDATE", campaign.id
        )
        await wait_for(lambda: running.epoch is not None)
        running._event(CampaignHold(campaign.id, "template paused", "template"))
        await wait_for(lambda: has_lock_waiter(store))
        running.stop()
        await asyncio.sleep(0.5)
        await locker.execute("ROLLBACK")
        await asyncio.wait_for(task, 30)
    finally:
        running.stop()
        await locker.close()
        if not task.done():
            await asyncio.wait_for(task, 30)
    fresh = await store.campaigns.get(campaign.id)
    assert fresh is not None
    assert fresh.status is CampaignStatus.HELD
