"""The campaign work queue: one durable stream of batches per instance, plus its dead letters.

Each instance actor reads its own stream through the consumer group; a batch is acked only
once every message in it is settled. Keys (``prefix`` default ``dispatcher:``):
``{prefix}campaigns:{instance}`` (batches), ``{prefix}campaigns:{instance}:dlq`` (dead
letters), ``{prefix}campaigns:instances`` (the set of instances that ever had a stream),
``{prefix}campaigns:marker`` (the deployment's marker: gone when Redis lost its data).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
import redis.asyncio as aioredis

from dispatcher.queue.stream import (
    MAX_DELIVERIES,
    DeadEntry,
    DurableStream,
    Reclaimed,
    Scripts,
    StreamStats,
)

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "dispatcher:"
QUEUE = "campaigns"

InstanceKey = str | UUID


@dataclass(frozen=True, slots=True)
class Job:
    """A batch as read by an instance actor."""

    job_id: str
    instance_id: str
    batch: dict[str, Any]
    deliveries: int
    """Times it was reclaimed from a consumer that died (0: first delivery)."""


@dataclass(frozen=True, slots=True)
class DeadBatch:
    dlq_id: str
    job_id: str
    instance_id: str
    batch: dict[str, Any]
    reason: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Depths of one queue: totals, and per instance for the campaigns queue."""

    pending: int
    processing: int
    dlq: int
    instances: dict[str, StreamStats] = field(default_factory=dict)


class WorkQueue:
    """Per-instance batch streams. Batches are JSON objects the actors define."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_deliveries: int = MAX_DELIVERIES,
    ) -> None:
        self._client = client
        self._scripts = Scripts(client)
        self._prefix = prefix
        self._max_deliveries = max_deliveries
        self._streams: dict[str, DurableStream] = {}
        self._registry = f"{prefix}{QUEUE}:instances"
        self._marker = f"{prefix}{QUEUE}:marker"

    @property
    def prefix(self) -> str:
        return self._prefix

    async def marker(self) -> str | None:
        """The marker the coordinator keeps here and in Postgres; None once Redis lost it."""
        value = await self._client.get(self._marker)
        return None if value is None else (value.decode() if isinstance(value, bytes) else value)

    async def set_marker(self, token: str) -> None:
        await self._client.set(self._marker, token)

    def forget_groups(self) -> None:
        """Redis lost its data: consumer groups are created again on each stream's next use."""
        for stream in self._streams.values():
            stream.forget_group()

    def stream(self, instance_id: InstanceKey) -> DurableStream:
        """The durable stream of one instance (for its key names and low-level use)."""
        key = str(instance_id)
        stream = self._streams.get(key)
        if stream is None:
            base = f"{self._prefix}{QUEUE}:{key}"
            stream = DurableStream(self._client, self._scripts, base, f"{base}:dlq")
            self._streams[key] = stream
        return stream

    async def instances(self) -> list[str]:
        """Every instance that has had a stream, sorted."""
        members = await self._client.smembers(self._registry)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def enqueue(self, instance_id: InstanceKey, batch: Mapping[str, Any]) -> str:
        """Append a batch to the instance's stream; returns its job id."""
        await self._client.sadd(self._registry, str(instance_id))
        return await self.stream(instance_id).add(orjson.dumps(batch))

    async def enqueue_many(
        self, instance_id: InstanceKey, batches: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        """Append many batches in one round trip; returns their job ids in order."""
        await self._client.sadd(self._registry, str(instance_id))
        return await self.stream(instance_id).add_many([orjson.dumps(b) for b in batches])

    async def read(
        self, instance_id: InstanceKey, consumer: str, count: int = 1, block_ms: int | None = None
    ) -> list[Job]:
        """Up to ``count`` batches delivered to ``consumer`` (waits up to ``block_ms``; None
        returns at once). They stay "processing" until acked, dead-lettered or reclaimed."""
        entries = await self.stream(instance_id).read(consumer, count, block_ms)
        return [
            Job(e.job_id, str(instance_id), orjson.loads(e.payload), e.deliveries) for e in entries
        ]

    async def ack(self, instance_id: InstanceKey, job_id: str) -> bool:
        """The batch is settled: acknowledge and delete it. False when it was not held any
        more (acked before, or reclaimed from this consumer): harmless, and worth a log."""
        acked = await self.stream(instance_id).ack([job_id]) == 1
        if not acked:
            log.warning("batch %s of instance %s already acked or reclaimed", job_id, instance_id)
        return acked

    async def touch(
        self, instance_id: InstanceKey, consumer: str, job_ids: Sequence[str]
    ) -> list[str]:
        """Keep batches ``consumer`` still works on from being reclaimed (e.g. while they
        wait for a backoff); returns those it still holds: drop any other."""
        return await self.stream(instance_id).touch(consumer, job_ids)

    async def dead_letter(
        self, instance_id: InstanceKey, job_id: str, batch: Mapping[str, Any], reason: str
    ) -> str | None:
        """Move a held batch (as it stands now: e.g. only its unsettled messages) to the
        instance's dead-letter stream with ``reason``. None when it was no longer held."""
        return await self.stream(instance_id).dead_letter(job_id, orjson.dumps(batch), reason)

    async def recover_stuck(
        self,
        instance_id: InstanceKey | None = None,
        *,
        min_idle_ms: int = 60_000,
        max_deliveries: int | None = None,
    ) -> Reclaimed:
        """Batches held longer than ``min_idle_ms`` by a consumer that stopped answering are
        appended again for any consumer (new job ids), or dead-lettered once reclaimed
        ``max_deliveries`` times. One instance, or all of them."""
        targets = [str(instance_id)] if instance_id is not None else await self.instances()
        requeued: dict[str, str] = {}
        dead: list[str] = []
        for target in targets:
            reclaimed = await self.stream(target).reclaim(
                min_idle_ms, max_deliveries=max_deliveries or self._max_deliveries
            )
            requeued.update(reclaimed.requeued)
            dead.extend(reclaimed.dead)
            if reclaimed.requeued or reclaimed.dead:
                log.warning(
                    "instance %s: %d stuck batches requeued, %d dead-lettered",
                    target,
                    len(reclaimed.requeued),
                    len(reclaimed.dead),
                )
        return Reclaimed(requeued, dead)

    async def dead_letters(self, instance_id: InstanceKey, count: int = 100) -> list[DeadBatch]:
        """The oldest dead-lettered batches of one instance."""
        entries: list[DeadEntry] = await self.stream(instance_id).dead_letters(count)
        return [
            DeadBatch(
                e.dlq_id, e.job_id, str(instance_id), orjson.loads(e.payload), e.reason, e.at_ms
            )
            for e in entries
        ]

    async def dead_letter_pages(
        self, instance_id: InstanceKey, page: int = 500
    ) -> AsyncIterator[list[DeadBatch]]:
        """Every dead-lettered batch of one instance, oldest first, a page at a time."""
        after = "-"
        stream = self.stream(instance_id)
        while entries := await stream.dead_letters(page, after=after):
            after = entries[-1].dlq_id
            yield [
                DeadBatch(
                    e.dlq_id, e.job_id, str(instance_id), orjson.loads(e.payload), e.reason, e.at_ms
                )
                for e in entries
            ]

    async def drop_dead(self, instance_id: InstanceKey, dlq_ids: Sequence[str]) -> int:
        """Delete dead letters (their work was given back to Postgres); how many."""
        if not dlq_ids:
            return 0
        return int(await self._client.xdel(self.stream(instance_id).dlq_key, *dlq_ids))

    async def retry_dlq(
        self, job_id: str | None = None, instance_id: InstanceKey | None = None
    ) -> list[str]:
        """Put dead-lettered batches back on their streams: all, or the one whose job id (or
        dead-letter id) is ``job_id``. Returns the new job ids."""
        targets = [str(instance_id)] if instance_id is not None else await self.instances()
        new_ids: list[str] = []
        for target in targets:
            new_ids.extend(await self.stream(target).retry_dead(job_id))
        return new_ids

    async def clear(self, instance_id: InstanceKey | None = None, *, dlq_only: bool = False) -> int:
        """Delete the batches (and dead letters) of one instance or all; returns how many.

        Recipients of deleted batches stay ``queued`` in Postgres until
        ``Recipients.requeue_stale`` gives them back.
        """
        targets = [str(instance_id)] if instance_id is not None else await self.instances()
        removed = 0
        for target in targets:
            removed += await self.stream(target).clear(dlq_only=dlq_only)
        return removed

    async def stats(self, instance_id: InstanceKey | None = None) -> QueueStats:
        """Pending (never delivered), processing (delivered, not acked) and DLQ, per instance
        and in total."""
        targets = [str(instance_id)] if instance_id is not None else await self.instances()
        per = {target: await self.stream(target).stats() for target in targets}
        return QueueStats(
            pending=sum(s.pending for s in per.values()),
            processing=sum(s.processing for s in per.values()),
            dlq=sum(s.dlq for s in per.values()),
            instances=per,
        )
