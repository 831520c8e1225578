"""Webhook intake: many concurrent POSTs, few Redis round trips, bounded waiting.

Meta delivers status callbacks concurrently, at up to three per message sent (Meta,
"Throughput": a webhook endpoint must take 3x the outgoing rate plus inbound traffic, with a
median latency under 250 ms). One XADD per request costs a Redis connection per request in
flight: at a few hundred concurrent POSTs the client's pool runs dry. Here each request
hands its payload to one writer and waits for it to be stored; the writer stores everything
waiting in one pipeline (group commit), so a burst of N requests costs one round trip, not N.

Past ``max_waiting`` payloads waiting, a request is refused with :class:`Overloaded` at once
(the API answers 503 with ``Retry-After``; Meta retries), instead of queueing without bound.
A payload is acknowledged only once Redis has it: a failed write fails every request of that
pipeline, and Meta sends them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from dispatcher.queue.webhooks import WebhookQueue

log = logging.getLogger(__name__)

MAX_WAITING = 20_000
"""Payloads waiting to be written before requests are refused: a few seconds of Meta's
heaviest traffic (3,000 statuses/s) at the writer's rate."""
MAX_PIPELINE = 1_000
"""Payloads per pipeline: one round trip stays short (a few ms) even in a burst."""
RETRY_AFTER_S = 1


class Overloaded(Exception):
    """More payloads wait to be written than the intake takes: try again shortly."""

    def __init__(self, waiting: int) -> None:
        super().__init__(f"{waiting} webhook payloads waiting to be written; retry shortly")
        self.retry_after_s = RETRY_AFTER_S


class WebhookIntake:
    """Group commit of webhook payloads into the webhooks stream, one writer per process."""

    def __init__(
        self,
        queue: WebhookQueue,
        *,
        max_waiting: int = MAX_WAITING,
        max_pipeline: int = MAX_PIPELINE,
    ) -> None:
        self._queue = queue
        self._max_waiting = max_waiting
        self._max_pipeline = max_pipeline
        self._waiting: list[tuple[bytes, asyncio.Future[str]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.written = 0
        self.refused = 0
        self.pipelines = 0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def push(self, payload: Mapping[str, Any] | bytes) -> str:
        """Store ``payload`` (an object, or its JSON already encoded, e.g. the verified
        request body as it came) durably with others waiting now; its job id. Raises
        :class:`Overloaded` at once when too many wait, or the write's error if it failed."""
        if len(self._waiting) >= self._max_waiting:
            self.refused += 1
            raise Overloaded(len(self._waiting))
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        encoded = payload if isinstance(payload, bytes) else WebhookQueue.encode(payload)
        self._waiting.append((encoded, future))
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="webhook-intake")
        return await future

    async def close(self) -> None:
        """Stop the writer; requests still waiting fail (unanswered, Meta sends them again)."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        waiting, self._waiting = self._waiting, []
        for _, future in waiting:
            if not future.done():
                future.set_exception(ConnectionError("the API is shutting down"))

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch = self._waiting[: self._max_pipeline]
                del self._waiting[: len(batch)]
                await self._write(batch)

    async def _write(self, batch: list[tuple[bytes, asyncio.Future[str]]]) -> None:
        try:
            ids = await self._queue.push_encoded([payload for payload, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                if not future.done():
                    future.set_exception(ConnectionError("the API is shutting down"))
            raise
        except Exception as exc:  # Redis away: every request of this pipeline fails (503)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.written += len(ids)
        self.pipelines += 1
        for (_, future), job_id in zip(batch, ids, strict=True):
            if not future.done():  # its request may have been cancelled (client gone)
                future.set_result(job_id)
