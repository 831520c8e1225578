"""Redis, the work in flight: per-instance batch streams, the webhooks stream, dead letters.

:class:`Queues` answers the operator's actions by queue name ("campaigns", "webhooks"),
as ``POST /queue/stats`` takes them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

import redis.asyncio as aioredis

from dispatcher.errors import QueueError
from dispatcher.queue.stream import Reclaimed
from dispatcher.queue.streams import DEFAULT_PREFIX, QueueStats, WorkQueue
from dispatcher.queue.webhooks import WebhookQueue

log = logging.getLogger(__name__)

QueueName = Literal["campaigns", "webhooks"]
RECOVER_EVERY_S = 60.0
VISIBILITY_TIMEOUT_MS = 300_000
"""A batch held this long without a touch is presumed to belong to a dead consumer."""


class Queues:
    """Both queues over one client and key prefix."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.campaigns = WorkQueue(client, prefix=prefix)
        self.webhooks = WebhookQueue(client, prefix=prefix)

    async def retry_dlq(self, queue: str, job_id: str | None = None) -> list[str]:
        """Dead letters of ``queue`` back to work (all, or one job id); the new job ids."""
        if self._name(queue) == "campaigns":
            return await self.campaigns.retry_dlq(job_id)
        return await self.webhooks.retry_dlq(job_id)

    async def clear(self, queue: str, *, dlq_only: bool = False) -> int:
        """Delete every job of ``queue`` (or only its dead letters); how many."""
        if self._name(queue) == "campaigns":
            return await self.campaigns.clear(dlq_only=dlq_only)
        return await self.webhooks.clear(dlq_only=dlq_only)

    async def recover_stuck(self, queue: str, *, min_idle_ms: int = 60_000) -> Reclaimed:
        if self._name(queue) == "campaigns":
            return await self.campaigns.recover_stuck(min_idle_ms=min_idle_ms)
        return await self.webhooks.recover_stuck(min_idle_ms=min_idle_ms)

    async def recover_forever(
        self,
        *,
        every_s: float = RECOVER_EVERY_S,
        min_idle_ms: int = VISIBILITY_TIMEOUT_MS,
        cycles: int | None = None,
    ) -> None:
        """Reclaim stuck jobs of both queues every ``every_s`` (the automatic recover_stuck);
        runs until cancelled, or for ``cycles`` rounds."""
        done = 0
        while cycles is None or done < cycles:
            for queue in ("campaigns", "webhooks"):
                reclaimed = await self.recover_stuck(queue, min_idle_ms=min_idle_ms)
                if reclaimed.requeued or reclaimed.dead:
                    log.info(
                        "%s: %d stuck jobs requeued, %d dead-lettered",
                        queue,
                        len(reclaimed.requeued),
                        len(reclaimed.dead),
                    )
            done += 1
            if cycles is None or done < cycles:
                await asyncio.sleep(every_s)

    async def stats(self, instance_id: str | None = None) -> dict[str, QueueStats]:
        return {
            "campaigns": await self.campaigns.stats(instance_id),
            "webhooks": await self.webhooks.stats(),
        }

    @staticmethod
    def _name(queue: str) -> QueueName:
        if queue == "campaigns":
            return "campaigns"
        if queue == "webhooks":
            return "webhooks"
        raise QueueError(queue, "unknown queue: choose campaigns or webhooks")


__all__ = ["QueueStats", "Queues", "WebhookQueue", "WorkQueue"]
