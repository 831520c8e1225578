"""Apply Meta's status webhooks in bulk: read many from the durable stream, one write, ack."""

from __future__ import annotations

import asyncio
import logging

from dispatcher.meta.webhooks import statuses
from dispatcher.queue.webhooks import WebhookQueue
from dispatcher.store import Store
from dispatcher.store.models import StatusUpdate

log = logging.getLogger(__name__)


class WebhookApplier:
    """Drains the webhooks stream; a burst of callbacks becomes a few bulk updates."""

    def __init__(
        self,
        store: Store,
        queue: WebhookQueue,
        consumer: str = "webhook-applier",
        batch: int = 500,
    ) -> None:
        self._store = store
        self._queue = queue
        self._consumer = consumer
        self._batch = batch
        self.applied = 0
        self.malformed = 0

    async def run(self) -> None:
        await self._queue.recover_stuck(min_idle_ms=0)  # what a dead predecessor held
        while True:
            try:
                await self.apply_once(block_ms=500)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed write is retried: the payloads stay unacked
                log.exception("applying webhooks failed; retrying")
                await asyncio.sleep(1.0)
                await self._queue.recover_stuck(min_idle_ms=0)

    async def apply_once(self, block_ms: int | None = None) -> int:
        """Apply up to one read's worth of payloads; how many statuses were written."""
        jobs = await self._queue.read(self._consumer, count=self._batch, block_ms=block_ms)
        if not jobs:
            return 0
        updates: list[StatusUpdate] = []
        good: list[str] = []
        for job in jobs:
            try:
                updates.extend(statuses(job.payload))
            except ValueError as exc:
                self.malformed += 1
                await self._queue.dead_letter(job.job_id, job.payload, str(exc))
                continue
            good.append(job.job_id)
        if updates:
            await self._store.outcomes.apply_statuses(updates)
        await self._queue.ack(good)
        self.applied += len(updates)
        return len(updates)
