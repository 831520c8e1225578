from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from dispatcher.errors import QueueError
from dispatcher.queue import Queues


async def test_a_burst_of_webhooks_is_stored_and_applied_in_bulk(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    queues = Queues(redis_client, prefix=redis_prefix)
    payloads = [{"entry": [{"id": str(i)}]} for i in range(250)]
    ids = await queues.webhooks.push_many(payloads)
    first = await queues.webhooks.read("applier", count=200, block_ms=100)
    assert [j.payload for j in first] == payloads[:200]
    stats = (await queues.stats())["webhooks"]
    assert (stats.pending, stats.processing) == (50, 200)
    assert await queues.webhooks.ack([j.job_id for j in first]) == 200
    rest = await queues.webhooks.read("applier", count=200)
    assert [j.job_id for j in rest] == ids[200:]
    bad = rest[0]
    assert await queues.webhooks.dead_letter(bad.job_id, bad.payload, "malformed")
    assert await queues.webhooks.ack([j.job_id for j in rest]) == 49
    assert (await queues.webhooks.stats()).dlq == 1

    assert await queues.retry_dlq("webhooks", bad.job_id)
    [retried] = await queues.webhooks.read("applier", count=10)
    assert retried.payload == bad.payload
    assert await queues.clear("webhooks") == 1


async def test_stuck_webhooks_are_recovered(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    queues = Queues(redis_client, prefix=redis_prefix)
    job_id = await queues.webhooks.push({"n": 1})
    await queues.webhooks.read("died", count=1)
    recovered = await queues.recover_stuck("webhooks", min_idle_ms=0)
    assert list(recovered.requeued) == [job_id]
    [job] = await queues.webhooks.read("applier", count=1)
    assert (job.payload, job.deliveries) == ({"n": 1}, 1)


async def test_queue_names_are_checked(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    queues = Queues(redis_client, prefix=redis_prefix)
    with pytest.raises(QueueError, match="unknown queue"):
        await queues.clear("emails")
    assert await queues.retry_dlq("campaigns") == []


async def test_recovery_runs_periodically_over_both_queues(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    queues = Queues(redis_client, prefix=redis_prefix)
    await queues.webhooks.push({"n": 1})
    await queues.campaigns.enqueue("a", {"n": 2})
    await queues.webhooks.read("died", count=1)
    await queues.campaigns.read("a", "died", count=1)
    await queues.recover_forever(every_s=0, min_idle_ms=0, cycles=2)
    stats = await queues.stats()
    assert (stats["webhooks"].pending, stats["webhooks"].processing) == (1, 0)
    assert (stats["campaigns"].pending, stats["campaigns"].processing) == (1, 0)
