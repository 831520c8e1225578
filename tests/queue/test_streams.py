from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from dispatcher.queue.streams import WorkQueue

INSTANCE = "instance-a"


def _queue(client: aioredis.Redis, prefix: str, **kwargs: int) -> WorkQueue:
    return WorkQueue(client, prefix=prefix, **kwargs)


async def test_a_batch_is_read_once_and_acked_once(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    queue = _queue(redis_client, redis_prefix)
    batch = {"campaign_id": "c1", "claim_id": 7, "recipients": [{"id": 1, "phone": "+5511"}]}
    job_id = await queue.enqueue(INSTANCE, batch)
    [job] = await queue.read(INSTANCE, "actor-1", count=10, block_ms=100)
    assert (job.job_id, job.batch, job.deliveries) == (job_id, batch, 0)
    assert await queue.read(INSTANCE, "actor-2", count=10) == []
    stats = await queue.stats(INSTANCE)
    assert (stats.pending, stats.processing, stats.dlq) == (0, 1, 0)
    assert await queue.ack(INSTANCE, job_id) is True
    assert await queue.ack(INSTANCE, job_id) is False  # harmless, and reported
    stats = await queue.stats()
    assert (stats.pending, stats.processing, stats.dlq) == (0, 0, 0)


async def test_stats_count_pending_processing_and_dead_letters_per_instance(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    queue = _queue(redis_client, redis_prefix)
    await queue.enqueue_many("a", [{"n": i} for i in range(5)])
    await queue.enqueue_many("b", [{"n": i} for i in range(2)])
    jobs = await queue.read("a", "actor", count=3)
    assert await queue.dead_letter("a", jobs[0].job_id, jobs[0].batch, "retries exhausted")
    stats = await queue.stats()
    assert (stats.pending, stats.processing, stats.dlq) == (4, 2, 1)
    assert (stats.instances["a"].pending, stats.instances["a"].processing) == (2, 2)
    assert (stats.instances["b"].pending, stats.instances["b"].dlq) == (2, 0)
    assert await queue.instances() == ["a", "b"]


async def test_a_dead_consumers_batch_is_reclaimed_and_nothing_is_lost_or_acked_twice(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    queue = _queue(redis_client, redis_prefix)
    ids = await queue.enqueue_many(INSTANCE, [{"n": i} for i in range(3)])
    held_by_dead = await queue.read(INSTANCE, "dead", count=2)
    assert [j.job_id for j in held_by_dead] == ids[:2]
    # Real time is unavoidable here: the dead consumer's batches must become idle.
    await asyncio.sleep(0.4)
    [alive] = await queue.read(INSTANCE, "alive", count=1)
    # The "dead" consumer is alive for its first batch after all: touching keeps it.
    assert await queue.touch(INSTANCE, "dead", [ids[0]]) == [ids[0]]

    recovered = await queue.recover_stuck(INSTANCE, min_idle_ms=250)
    assert list(recovered.requeued) == [ids[1]]
    assert recovered.dead == []
    assert await queue.ack(INSTANCE, ids[1]) is False  # the late ack of the dead holder
    assert await queue.touch(INSTANCE, "dead", [ids[1]]) == []  # it knows it lost it

    [again] = await queue.read(INSTANCE, "rescuer", count=10)
    assert (again.job_id, again.batch, again.deliveries) == (
        recovered.requeued[ids[1]],
        {"n": 1},
        1,
    )
    settled = [await queue.ack(INSTANCE, job_id) for job_id in (ids[0], alive.job_id, again.job_id)]
    assert settled == [True, True, True]
    stats = await queue.stats(INSTANCE)
    assert (stats.pending, stats.processing, stats.dlq) == (0, 0, 0)


async def test_a_batch_reclaimed_too_often_is_dead_lettered(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    queue = _queue(redis_client, redis_prefix, max_deliveries=2)
    job_id = await queue.enqueue(INSTANCE, {"poison": True})
    await queue.read(INSTANCE, "c1", count=1)
    first = await queue.recover_stuck(min_idle_ms=0)
    await queue.read(INSTANCE, "c2", count=1)
    second = await queue.recover_stuck(min_idle_ms=0)
    assert list(first.requeued) == [job_id]
    assert second.dead == [first.requeued[job_id]]
    [dead] = await queue.dead_letters(INSTANCE)
    assert dead.batch == {"poison": True}
    assert "2 times" in dead.reason
    stats = await queue.stats()
    assert (stats.pending, stats.processing, stats.dlq) == (0, 0, 1)


async def test_dead_letters_are_retried_one_or_all_and_cleared(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    queue = _queue(redis_client, redis_prefix)
    await queue.enqueue_many("a", [{"n": i} for i in range(3)])
    await queue.enqueue("b", {"n": 9})
    for instance in ("a", "b"):
        for job in await queue.read(instance, "actor", count=10):
            assert await queue.dead_letter(instance, job.job_id, job.batch, f"bad {job.batch}")
    assert (await queue.stats()).dlq == 4
    assert await queue.dead_letter("a", "0-1", {}, "not held") is None

    one = (await queue.dead_letters("a"))[1]
    assert await queue.retry_dlq(one.job_id) != []
    [back] = await queue.read("a", "actor", count=10)
    assert (back.batch, back.deliveries) == ({"n": 1}, 0)
    assert await queue.retry_dlq(one.job_id) == []  # already retried

    assert len(await queue.retry_dlq()) == 3
    stats = await queue.stats()
    assert (stats.pending, stats.processing, stats.dlq) == (3, 1, 0)
    assert await queue.clear() == 4
    assert (await queue.stats()).pending == 0
    # A cleared stream works again: its group is recreated on the next read.
    await queue.enqueue("a", {"n": 10})
    assert [j.batch for j in await queue.read("a", "actor", count=10)] == [{"n": 10}]


async def test_clear_can_drop_only_the_dead_letters(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    queue = _queue(redis_client, redis_prefix)
    await queue.enqueue_many("a", [{"n": 1}, {"n": 2}])
    [job] = await queue.read("a", "actor", count=1)
    await queue.dead_letter("a", job.job_id, job.batch, "x")
    assert await queue.clear(dlq_only=True) == 1
    stats = await queue.stats()
    assert (stats.pending, stats.dlq) == (1, 0)


async def test_keys_stay_under_the_prefix(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    queue = _queue(redis_client, redis_prefix)
    await queue.enqueue("a", {"n": 1})
    keys = [key async for key in redis_client.scan_iter(match=f"{redis_prefix}*")]
    assert sorted(keys) == [
        f"{redis_prefix}campaigns:a".encode(),
        f"{redis_prefix}campaigns:instances".encode(),
    ]


async def test_a_start_up_reclaim_may_re_append_past_the_dead_letter_count(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    """A worker restarted many times takes its stream's held batch back every time (each
    restart counts a delivery); the periodic recovery keeps the dead-letter cap."""
    queue = WorkQueue(redis_client, prefix=redis_prefix, max_deliveries=2)
    await queue.enqueue("a", {"n": 1})
    for _ in range(4):
        await queue.read("a", "died", count=1)
        reclaimed = await queue.recover_stuck("a", min_idle_ms=0, max_deliveries=1_000)
        assert len(reclaimed.requeued) == 1
        assert not reclaimed.dead
    await queue.read("a", "died", count=1)
    assert (await queue.recover_stuck("a", min_idle_ms=0)).dead
