"""The webhooks queue: Meta's status callbacks, absorbed durably, applied in bulk.

The HTTP handler verifies the signature and pushes the payload; an applier reads many at a
time, writes their statuses in one statement, then acks them all. Keys: ``{prefix}webhooks``
and ``{prefix}webhooks:dlq``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from dispatcher.queue.stream import MAX_DELIVERIES, DurableStream, Reclaimed, Scripts
from dispatcher.queue.streams import DEFAULT_PREFIX, QueueStats

QUEUE = "webhooks"


@dataclass(frozen=True, slots=True)
class WebhookJob:
    job_id: str
    payload: dict[str, Any]
    deliveries: int


class WebhookQueue:
    """One stream of webhook payloads (JSON objects, e.g. Meta's POST body once verified)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_deliveries: int = MAX_DELIVERIES,
    ) -> None:
        key = f"{prefix}{QUEUE}"
        self.stream = DurableStream(client, Scripts(client), key, f"{key}:dlq")
        self._max_deliveries = max_deliveries

    async def push(self, payload: Mapping[str, Any]) -> str:
        """Store one payload durably; returns its job id."""
        return await self.stream.add(orjson.dumps(payload))

    async def push_many(self, payloads: Sequence[Mapping[str, Any]]) -> list[str]:
        return await self.push_encoded([self.encode(p) for p in payloads])

    async def push_encoded(self, payloads: Sequence[bytes]) -> list[str]:
        """Store payloads already encoded by :meth:`encode`, in one round trip."""
        return await self.stream.add_many(payloads)

    @staticmethod
    def encode(payload: Mapping[str, Any]) -> bytes:
        return orjson.dumps(payload)

    async def read(
        self, consumer: str, count: int = 100, block_ms: int | None = None
    ) -> list[WebhookJob]:
        entries = await self.stream.read(consumer, count, block_ms)
        return [WebhookJob(e.job_id, orjson.loads(e.payload), e.deliveries) for e in entries]

    async def ack(self, job_ids: Sequence[str]) -> int:
        """Acknowledge applied payloads; returns how many were still held."""
        return await self.stream.ack(job_ids)

    async def touch(self, consumer: str, job_ids: Sequence[str]) -> list[str]:
        return await self.stream.touch(consumer, job_ids)

    async def dead_letter(self, job_id: str, payload: Mapping[str, Any], reason: str) -> str | None:
        """A payload that cannot be applied (malformed): kept aside with the reason."""
        return await self.stream.dead_letter(job_id, orjson.dumps(payload), reason)

    async def keep_unreadable(self, body: bytes, reason: str) -> str:
        """A signed body that is not Meta's shape: answered 200 (Meta would retry anything
        else for days), kept aside for inspection. Wrapped in a JSON object, so that
        ``retry_dlq`` can put it back and the applier dead-letters it again, harmlessly."""
        wrapped = {"unreadable_body": body.decode("utf-8", "replace")}
        return await self.stream.keep_dead(orjson.dumps(wrapped), reason[:500])

    async def recover_stuck(self, *, min_idle_ms: int = 60_000) -> Reclaimed:
        return await self.stream.reclaim(min_idle_ms, max_deliveries=self._max_deliveries)

    async def retry_dlq(self, job_id: str | None = None) -> list[str]:
        return await self.stream.retry_dead(job_id)

    async def clear(self, *, dlq_only: bool = False) -> int:
        return await self.stream.clear(dlq_only=dlq_only)

    async def stats(self) -> QueueStats:
        s = await self.stream.stats()
        return QueueStats(pending=s.pending, processing=s.processing, dlq=s.dlq)
