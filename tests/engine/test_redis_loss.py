"""Redis losing its data under a running coordinator: noticed at its next round, the queue
rebuilt from Postgres. On an embedded valkey of the test's own: flushing or restarting a
server is never done to the machine's Redis."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from dispatcher.engine.batch import Batch, BatchItem, send_body, template_from_json
from dispatcher.engine.config import EngineConfig
from dispatcher.engine.instance import InstanceWorker
from dispatcher.engine.recovery import SWEEP_EVERY_S, orphaned_after_s
from dispatcher.meta.client import MetaClient
from dispatcher.meta.tiers import MessagingTier
from dispatcher.queue.connection import connect_redis
from dispatcher.sandbox.control import SandboxControl
from dispatcher.services import EmbeddedRedis
from dispatcher.store import Store
from dispatcher.store.models import NewRecipient, RecipientStatus, SendOutcome
from tests.engine.fakes import wait_for
from tests.engine.recovery_world import World, own_store, world_over

__all__ = ["own_store"]


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "valkey")
    server.ensure_running()
    yield server
    server.stop()


@pytest.fixture
async def valkey_client(valkey: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    url = valkey.url()
    assert url is not None
    client = await connect_redis(url)
    yield client
    await client.aclose()


async def lose_redis_data(valkey: EmbeddedRedis, how: str, client: aioredis.Redis) -> None:
    """A flush, or a restart without persistence (its append-only file is gone)."""
    if how == "flush":
        await client.flushall()
        return
    valkey.stop()
    for path in valkey.directory.rglob("*.aof*"):
        if path.is_file():
            path.unlink()
    for path in valkey.directory.glob("appendonlydir/*"):
        path.unlink()
    valkey.ensure_running()


async def in_doubt(world: World, ids: list[int]) -> list[int]:
    rows = await world.store.pool.fetch(
        "SELECT id FROM whatsapp_campaign_recipients "
        "WHERE id = ANY($1::bigint[]) AND in_doubt_at IS NOT NULL",
        ids,
    )
    return [row["id"] for row in rows]


async def next_round(world: World) -> None:
    """A coordinator round, retried as the actor's loop retries it: the first command after
    a server restart meets the closed connection (an outage, not a loss)."""
    for _ in range(5):
        try:
            await world.core.tick()
            return
        except RedisConnectionError:
            await asyncio.sleep(0.2)
    raise AssertionError("Redis did not come back")


@pytest.mark.parametrize("how", ["flush", "restart_without_persistence"])
async def test_redis_losing_its_data_is_noticed_and_the_queue_rebuilt_from_postgres(
    own_store: Store, valkey: EmbeddedRedis, valkey_client: aioredis.Redis, how: str
) -> None:
    world: World = world_over(
        own_store,
        valkey_client,
        "dispatcher:",
        queued_batches_per_instance=3,
        touch_interval_s=0.3,
        in_doubt_min_wait_s=0.5,
        in_doubt_max_wait_s=0.5,
        in_doubt_check_interval_s=0.0,
    )
    number = await world.number(tier=MessagingTier.TIER_100K)
    campaign = await world.campaign([number], 480)
    assert await world.core.start_campaign(campaign.id)
    await world.core.tick()
    alive, dead, waiting = await world.take(number)  # three batches of 160
    held = await world.start(number, alive)  # a live actor holds this one
    orphaned = await world.start(number, dead)  # this one's actor died with it
    assert await world.queue.marker() is not None

    await lose_redis_data(valkey, how, valkey_client)
    await next_round(world)  # the next round notices, rebuilds, routes again
    assert world.core.recovery.rebuilds == 1
    assert await world.store.recovery.losses("dispatcher:") == 1
    assert await world.queue.marker() is not None
    # The waiting batch's rows were routed again under a new claim: the old batch, had it
    # survived somewhere, would send none of them.
    assert await world.start(number, waiting) == []
    rerouted = [i for job in await world.take(number) for i in await world.start(number, job)]
    assert sorted(rerouted) == sorted(i.recipient_id for i in Batch.from_json(waiting.batch).items)
    # In doubt: nobody resends the started batches while their holders may still send.
    status = await world.store.recipients.statuses(held + orphaned)
    assert set(status.values()) == {RecipientStatus.SENDING}

    # The live actor keeps its rows alive; the dead one's go quiet past the bound.
    deadline = asyncio.get_running_loop().time() + orphaned_after_s(world.config) + 0.5
    while asyncio.get_running_loop().time() < deadline:
        await world.store.recipients.keep_alive(held)
        await asyncio.sleep(world.config.touch_interval_s)
    world.clock.advance(SWEEP_EVERY_S)
    await world.core.tick()
    assert set(await in_doubt(world, held + orphaned)) == set(orphaned)  # nobody holds them
    status = await world.store.recipients.statuses(held + orphaned)
    assert set(status.values()) == {RecipientStatus.SENDING}
    assert world.core.recovery.lost_at is not None  # the live holder's rows are unsettled
    await asyncio.sleep(0.7)  # no webhook came within the bound: the policy (resend) acts
    await world.core.tick()
    status = await world.store.recipients.statuses(held + orphaned)
    assert {status[i] for i in held} == {RecipientStatus.SENDING}
    assert {status[i] for i in orphaned} == {RecipientStatus.PENDING}

    await world.settle(number, held, SendOutcome.SENT)  # the live holder finishes
    world.clock.advance(SWEEP_EVERY_S)
    await world.core.tick()
    assert world.core.recovery.lost_at is None
    await world.core.tick()
    assert world.core.recovery.rebuilds == 1  # the marker is back: no second rebuild


async def test_a_new_deployment_is_not_mistaken_for_a_lost_redis(
    own_store: Store, valkey_client: aioredis.Redis
) -> None:
    world = world_over(own_store, valkey_client, "fresh:")
    await world.core.tick()
    await world.core.tick()
    assert world.core.recovery.rebuilds == 0
    assert await world.store.recovery.losses("fresh:") == 0
    restarted = world.restart()  # a restarted coordinator finds the marker in both
    await restarted.tick()
    assert restarted.recovery.rebuilds == 0


NAMED_TEMPLATE = {
    "name": "hello_world",
    "language": {"code": "en_US"},
    "components": [{"type": "body", "parameters": [{"type": "text", "text": "Oi {{name}}"}]}],
}


async def test_batches_routed_again_after_the_loss_send_the_template_kept_in_postgres(
    own_store: Store,
    valkey: EmbeddedRedis,
    valkey_client: aioredis.Redis,
    client: MetaClient,
    sandbox: SandboxControl,
) -> None:
    """Redis never had the template: a batch rebuilt after the loss, read by a fresh actor,
    still sends each recipient's message rendered from the campaign's template."""
    world = world_over(own_store, valkey_client, "dispatcher:", queued_batches_per_instance=1)
    number = await own_store.instances.upsert(
        "2001", "biz-large", "token-2001", throughput_mps=1000
    )
    campaign = await own_store.campaigns.create("loss", NAMED_TEMPLATE, [number.id])
    start = int(uuid.uuid4().int % 10**6)
    await own_store.recipients.ingest(
        campaign.id,
        [
            NewRecipient(phone=f"+5511996{start + i:06d}", variables={"name": f"N{i}"})
            for i in range(5)
        ],
    )
    assert await world.core.start_campaign(campaign.id)
    await world.core.tick()
    assert (await world.queue.stream(number.id).stats()).pending == 1
    await lose_redis_data(valkey, "flush", valkey_client)
    await next_round(world)  # rebuilt from Postgres and routed again
    assert world.core.recovery.rebuilds == 1
    assert (await world.queue.stream(number.id).stats()).pending == 1

    worker = InstanceWorker(
        instance_id=number.id,
        phone_number_id="2001",
        throughput_mps=1000,
        token="token-2001",
        store=own_store,
        queue=world.queue,
        client=client,
        config=EngineConfig(flush_interval_s=0.05),
    )
    task = asyncio.create_task(worker.run())
    try:
        await wait_for(lambda: worker.written == 5)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
    stored = await own_store.campaigns.template(campaign.id)
    assert stored is not None
    tag = await own_store.secrets.callback_tag()
    rows = await own_store.recipients.page(campaign.id)
    expected = {
        hashlib.blake2b(
            send_body(
                template_from_json(stored),
                BatchItem(r.id, r.phone or "", r.variables, 0, retries=0),
                tag,
            ),
            digest_size=8,
        ).hexdigest()
        for r in rows
    }
    assert {r["body_hash"] for r in await sandbox.requests()} == expected
    assert {r.status for r in rows} == {RecipientStatus.SENT}
    assert worker.templates.loads == 1
