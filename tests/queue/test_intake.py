"""The webhook intake against the real Redis: group commit, bounded waiting, failures."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from dispatcher.queue import Queues
from dispatcher.queue.intake import Overloaded, WebhookIntake
from dispatcher.queue.webhooks import WebhookQueue


async def test_concurrent_payloads_are_stored_in_few_round_trips(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    queues = Queues(redis_client, prefix=redis_prefix)
    intake = WebhookIntake(queues.webhooks)
    payloads = [{"entry": [{"id": str(i)}]} for i in range(500)]
    try:
        ids = await asyncio.gather(*(intake.push(p) for p in payloads))
    finally:
        await intake.close()
    assert len(set(ids)) == 500
    # 500 requests at once: a handful of pipelines, not 500 round trips.
    assert intake.pipelines <= 5
    stored = await queues.webhooks.read("applier", count=1000)
    assert [job.payload for job in stored] == payloads
    assert [job.job_id for job in stored] == ids


async def test_past_its_bound_the_intake_refuses_at_once_and_stores_the_rest(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    queues = Queues(redis_client, prefix=redis_prefix)
    intake = WebhookIntake(queues.webhooks, max_waiting=10)
    payloads = [{"entry": [{"id": str(i)}]} for i in range(50)]
    try:
        # All 50 arrive before the writer runs once: 10 wait, 40 are refused.
        results = await asyncio.gather(*(intake.push(p) for p in payloads), return_exceptions=True)
    finally:
        await intake.close()
    refused = [r for r in results if isinstance(r, Overloaded)]
    assert (len(refused), intake.refused) == (40, 40)
    assert refused[0].retry_after_s >= 1
    stored = await queues.webhooks.read("applier", count=100)
    assert [job.payload for job in stored] == payloads[:10]


async def test_a_failed_write_fails_its_requests_and_the_writer_goes_on() -> None:
    unreachable = aioredis.Redis(port=1, socket_connect_timeout=1)
    intake = WebhookIntake(WebhookQueue(unreachable))
    try:
        with pytest.raises(RedisConnectionError):
            await intake.push({"entry": []})
        # The writer survives the failure: the next payload is tried (and fails) too.
        with pytest.raises(RedisConnectionError):
            await intake.push({"entry": []})
    finally:
        await intake.close()
        await unreachable.aclose()
