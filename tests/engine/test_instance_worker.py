"""InstanceWorker in-process: real Redis stream, real Postgres, the sandbox over real HTTP.

Postgres faults are real: a row lock held by the test stalls the worker's bulk write, and
terminating the backend that waits on it fails the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import pytest

from dispatcher.engine.batch import Batch
from dispatcher.engine.config import EngineConfig
from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.engine.instance import InstanceWorker
from dispatcher.meta.client import MetaClient
from dispatcher.queue.streams import WorkQueue
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from dispatcher.store.models import Campaign, Instance, RecipientStatus, StatusUpdate
from tests.engine.conftest import MakeCampaign, MakeInstance
from tests.engine.fakes import FakeClock, FakeFleet, wait_for


@pytest.fixture
async def worker_store(engine_url: str) -> AsyncIterator[Store]:
    """The worker's own pool: the faults below hit its connections, not the test's."""
    opened = await Store.open(engine_url, max_size=2, run_migrations=False)
    yield opened
    await opened.close()


async def sandbox_number(make_instance: MakeInstance) -> Instance:
    return await make_instance(
        "biz-large", phone_number_id="2001", token="token-2001", throughput_mps=1000
    )


async def routed(
    store: Store, queue: WorkQueue, instance: Instance, campaign: Campaign, size: int
) -> None:
    """One batch of ``size`` on the instance's stream, routed by the real coordinator."""
    config = EngineConfig(batch_size=size, queued_batches_per_instance=1)
    core = CoordinatorCore(store, queue, FakeFleet(), config, FakeClock())
    assert await core.start_campaign(campaign.id)
    await core.tick()
    assert (await queue.stream(instance.id).stats()).pending == 1


def worker(
    instance: Instance,
    store: Store,
    queue: WorkQueue,
    client: MetaClient,
    mps: float = 1000,
    **config: object,
) -> InstanceWorker:
    return InstanceWorker(
        instance_id=instance.id,
        phone_number_id=instance.phone_number_id,
        throughput_mps=mps,
        token="token-2001",
        store=store,
        queue=queue,
        client=client,
        config=EngineConfig(**config),  # type: ignore[arg-type]
    )


async def processing(queue: WorkQueue, instance_id: UUID) -> int:
    return (await queue.stream(instance_id).stats()).processing


async def lock_waiter(store: Store) -> int | None:
    """The backend of this database that waits on a row lock, if one does."""
    pid: int | None = await store.pool.fetchval(
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock' LIMIT 1"
    )
    return pid


async def stall_writes(
    engine_url: str, size: int, campaign: Campaign, running: InstanceWorker, store: Store
) -> tuple[asyncpg.Connection, int]:
    """Once the worker took the batch (rows ``sending``), lock the campaign's rows; return
    when every message is sent and the worker's flush waits on them (its results are then
    in hand, not yet written). The worker must send slowly enough for the lock to come
    first: its flush follows the last send at once."""
    await wait_for(lambda: all_in(store, campaign, RecipientStatus.SENDING, size), poll_s=0.002)
    locker = await asyncpg.connect(engine_url)
    await locker.execute("BEGIN")
    await locker.execute(
        "SELECT id FROM whatsapp_campaign_recipients WHERE campaign_id = $1 FOR UPDATE",
        campaign.id,
    )
    assert running.pipeline.stats.sent < size, "sent before the lock: send more slowly"
    await wait_for(lambda: running.pipeline.stats.sent == size)
    await wait_for(lambda: has_lock_waiter(store))
    pid = await lock_waiter(store)
    assert pid is not None
    return locker, pid


async def has_lock_waiter(store: Store) -> bool:
    return await lock_waiter(store) is not None


async def settled(queue: WorkQueue, instance_id: UUID) -> bool:
    return await processing(queue, instance_id) == 0


async def all_sent(store: Store, campaign: Campaign, size: int) -> bool:
    return await all_in(store, campaign, RecipientStatus.SENT, size)


async def all_in(store: Store, campaign: Campaign, status: RecipientStatus, size: int) -> bool:
    counts = await store.recipients.count_by_status(campaign.id)
    return counts[status] == size


async def test_a_batch_is_acked_only_after_its_results_are_written(
    store: Store,
    worker_store: Store,
    engine_url: str,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
    client: MetaClient,
    sandbox: SandboxControl,
) -> None:
    instance = await sandbox_number(make_instance)
    campaign = await make_campaign([instance], 20, start=1000)
    await routed(store, work_queue, instance, campaign, 20)
    running = worker(instance, worker_store, work_queue, client, 20, flush_interval_s=5.0)
    task = asyncio.create_task(running.run())
    try:
        locker, _ = await stall_writes(engine_url, 20, campaign, running, store)
        # Sent, results in hand, the write waiting: the batch must still be held.
        assert await processing(work_queue, instance.id) == 1
        counts = await store.recipients.count_by_status(campaign.id)
        assert counts[RecipientStatus.SENDING] == 20
        await locker.execute("ROLLBACK")
        await locker.close()
        await wait_for(lambda: settled(work_queue, instance.id))
        counts = await store.recipients.count_by_status(campaign.id)
        assert counts[RecipientStatus.SENT] == 20
        assert running.written == 20
    finally:
        running.stop()
        await asyncio.wait_for(task, 30)


async def test_results_are_kept_and_written_again_when_the_write_fails(
    store: Store,
    worker_store: Store,
    engine_url: str,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
    client: MetaClient,
    sandbox: SandboxControl,
) -> None:
    instance = await sandbox_number(make_instance)
    campaign = await make_campaign([instance], 20, start=2000)
    await routed(store, work_queue, instance, campaign, 20)
    running = worker(instance, worker_store, work_queue, client, 20, flush_interval_s=5.0)
    task = asyncio.create_task(running.run())
    try:
        locker, pid = await stall_writes(engine_url, 20, campaign, running, store)
        assert await store.pool.fetchval("SELECT pg_terminate_backend($1)", pid)
        # The write failed: the results stay in hand, the batch stays held.
        await wait_for(lambda: running.stats()["results_unwritten"] == 20)
        assert await processing(work_queue, instance.id) == 1
        await locker.execute("ROLLBACK")
        await locker.close()
        await wait_for(lambda: settled(work_queue, instance.id))
        counts = await store.recipients.count_by_status(campaign.id)
        assert counts[RecipientStatus.SENT] == 20
    finally:
        running.stop()
        await asyncio.wait_for(task, 30)
    audit = await sandbox.audit()
    assert (audit["accepted"], audit["duplicate_sends"]) == (20, 0)  # written, never resent


async def test_a_reclaimed_batch_with_sending_rows_waits_for_evidence(
    store: Store,
    worker_store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
    client: MetaClient,
    sandbox: SandboxControl,
) -> None:
    instance = await sandbox_number(make_instance)
    campaign = await make_campaign([instance], 10, start=3000)
    await routed(store, work_queue, instance, campaign, 10)
    # A predecessor (an earlier epoch) read the batch, marked it sending, and died: it may
    # have sent any of it.
    [job] = await work_queue.read(instance.id, "dead-actor", count=1)
    batch = Batch.from_json(job.batch)
    ids = [item.recipient_id for item in batch.items]
    epoch = await store.epochs.start(instance.id)
    assert await store.recipients.mark_sending(batch.claim_id, ids, instance.id, epoch) == ids

    running = worker(instance, worker_store, work_queue, client, flush_interval_s=0.1)
    task = asyncio.create_task(running.run())
    try:
        # In doubt, never resent by the worker: the batch is settled without a send.
        await wait_for(lambda: settled(work_queue, instance.id))
        assert running.in_doubt_found == 10
        assert await sandbox.requests() == []
        # Meta's webhooks say the predecessor's sends of four of them went through.
        now = datetime.now(UTC)
        await store.outcomes.apply_statuses(
            [StatusUpdate(RecipientStatus.DELIVERED, now, recipient_id=i) for i in ids[:4]]
        )
        # No webhook for the other six: once the bound passed, the policy (resend) gives
        # them back to pending for the coordinator to route again.
        later = now.timestamp() + 3600
        core = CoordinatorCore(
            store, work_queue, FakeFleet(), EngineConfig(), wall_clock=lambda: later
        )
        assert await core.resolve_in_doubt([campaign.id]) == 6
        assert await sandbox.requests() == []
    finally:
        running.stop()
        await asyncio.wait_for(task, 30)
    counts = await store.recipients.count_by_status(campaign.id)
    assert (counts[RecipientStatus.DELIVERED], counts[RecipientStatus.PENDING]) == (4, 6)


async def test_a_batch_whose_start_failed_is_started_again_at_once(
    store: Store,
    worker_store: Store,
    engine_url: str,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
    client: MetaClient,
    sandbox: SandboxControl,
) -> None:
    """A Postgres outage while a batch is being taken: read from the stream but not started,
    it is started again once Postgres answers, not left for the visibility timeout (120 s,
    during which the number sent nothing in the Postgres-restart chaos row)."""
    instance = await sandbox_number(make_instance)
    campaign = await make_campaign([instance], 10, start=4000)
    await routed(store, work_queue, instance, campaign, 10)
    locker = await asyncpg.connect(engine_url)
    await locker.execute("BEGIN")
    await locker.execute(
        "SELECT id FROM whatsapp_campaign_recipients WHERE campaign_id = $1 FOR UPDATE",
        campaign.id,
    )
    running = worker(instance, worker_store, work_queue, client, retry_after_s=0.2)
    task = asyncio.create_task(running.run())
    try:
        await wait_for(lambda: has_lock_waiter(store))  # the hand-over waits on the rows
        pid = await lock_waiter(store)
        assert await store.pool.fetchval("SELECT pg_terminate_backend($1)", pid)
        await locker.execute("ROLLBACK")
        await locker.close()
        await wait_for(lambda: settled(work_queue, instance.id))
        counts = await store.recipients.count_by_status(campaign.id)
        assert counts[RecipientStatus.SENT] == 10
    finally:
        running.stop()
        await asyncio.wait_for(task, 30)
    audit = await sandbox.audit()
    assert (audit["accepted"], audit["duplicate_sends"]) == (10, 0)


async def test_a_hand_over_whose_answer_was_lost_is_sent_once(
    store: Store,
    worker_store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
    client: MetaClient,
    sandbox: SandboxControl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hand-over committed but its answer never came back (the connection dropped after
    the commit): started again, the worker sends the rows it already holds, once."""
    instance = await sandbox_number(make_instance)
    campaign = await make_campaign([instance], 10, start=5000)
    await routed(store, work_queue, instance, campaign, 10)
    real = worker_store.recipients.hand_over
    answers_lost = 0

    async def committed_then_lost(*args: object, **kwargs: object) -> object:
        nonlocal answers_lost
        handed = await real(*args, **kwargs)  # type: ignore[arg-type]
        if answers_lost == 0:
            answers_lost += 1
            raise ConnectionResetError("connection lost after the commit")
        return handed

    monkeypatch.setattr(worker_store.recipients, "hand_over", committed_then_lost)
    running = worker(instance, worker_store, work_queue, client, retry_after_s=0.2)
    task = asyncio.create_task(running.run())
    try:
        await wait_for(lambda: all_sent(store, campaign, 10))
        await wait_for(lambda: settled(work_queue, instance.id))
        assert answers_lost == 1
    finally:
        running.stop()
        await asyncio.wait_for(task, 30)
    audit = await sandbox.audit()
    assert (audit["accepted"], audit["duplicate_sends"]) == (10, 0)


async def test_a_start_retried_after_its_batch_was_reclaimed_resends_nothing(
    store: Store,
    worker_store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
    client: MetaClient,
    sandbox: SandboxControl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Postgres flaps while a batch is being sent: the batch is reclaimed (appended again),
    the worker drops the original, and the copy's start fails until Postgres answers. The
    retried start must not send the rows the worker already sent and has not written."""
    instance = await sandbox_number(make_instance)
    campaign = await make_campaign([instance], 10, start=7000)
    await routed(store, work_queue, instance, campaign, 10)
    running = worker(
        instance,
        worker_store,
        work_queue,
        client,
        2,
        flush_interval_s=30.0,
        touch_interval_s=0.2,
        retry_after_s=0.2,
    )
    real_status = worker_store.campaigns.status
    first: list[str] = []

    async def flapping(campaign_id: object) -> object:
        if first and first[0] in running.held_jobs():
            raise ConnectionResetError("postgres flapped")
        return await real_status(campaign_id)  # type: ignore[arg-type]

    task = asyncio.create_task(running.run())
    try:
        await wait_for(lambda: running.pipeline.stats.sent >= 3)
        first.extend(running.held_jobs())
        monkeypatch.setattr(worker_store.campaigns, "status", flapping)
        await work_queue.recover_stuck(instance.id, min_idle_ms=0)
        await asyncio.sleep(8.0)  # at 2 a second, resends of the first sends would show
    finally:
        running.stop()
        await asyncio.wait_for(task, 60)
    audit = await sandbox.audit()
    assert audit["duplicate_sends"] == 0
