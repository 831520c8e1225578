"""Apply Meta's webhooks in bulk: read many from the durable stream, write, act, ack.

Statuses (``field: messages``) of a whole read become one bulk write. Every other field is
handed to its handler (:mod:`dispatcher.engine.webhook_handlers`). Two kinds of failure are
told apart (:func:`dispatcher.outages.is_outage`):

- Postgres or Redis away: the payloads in hand are kept and the same work is retried in
  place, with backoff, until it goes through. Nothing is dead-lettered for an outage;
- a payload that cannot be applied (not Meta's shape, or data the database refuses): it
  alone is dead-lettered with the reason; the rest of its read is applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from dispatcher.meta.callback_tag import CallbackTag
from dispatcher.meta.webhooks import MESSAGES_FIELD, Change, change_statuses, changes
from dispatcher.outages import is_outage
from dispatcher.queue.webhooks import WebhookJob, WebhookQueue
from dispatcher.store import Store
from dispatcher.store.models import StatusUpdate

log = logging.getLogger(__name__)

T = TypeVar("T")

Handler = Callable[[Change], Awaitable[None]]
"""Acts on one change of an operational field; raises on failure (an outage is retried)."""


@dataclass(slots=True)
class _Parsed:
    job: WebhookJob
    changes: list[Change]

    def statuses(self, tag: CallbackTag) -> list[StatusUpdate]:
        return [
            update
            for change in self.changes
            if change.field == MESSAGES_FIELD
            for update in change_statuses(change, tag)
        ]


class WebhookApplier:
    """Drains the webhooks stream; a burst of callbacks becomes a few bulk updates."""

    def __init__(
        self,
        store: Store,
        queue: WebhookQueue,
        consumer: str = "webhook-applier",
        batch: int = 500,
        handlers: Mapping[str, Handler] | None = None,
        retry_base_s: float = 0.2,
        retry_cap_s: float = 5.0,
        *,
        on_lag: Callable[[float], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._queue = queue
        self._consumer = consumer
        self._batch = batch
        self._handlers = dict(handlers or {})
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self.applied = 0
        self.malformed = 0
        self.outage_retries = 0
        self.watermark_s: float | None = None
        """The latest event time (Meta's clock, seconds) among the statuses applied: how far
        the webhooks have come, which bounds the wait of in-doubt sends."""
        self._tag: CallbackTag | None = None
        self._on_lag = on_lag
        """Told, per status write, the seconds from Meta's timestamp of the newest status
        written to the write (the metrics' webhook lag)."""
        self._wall_clock = wall_clock

    async def _callback_tag(self) -> CallbackTag:
        """The deployment's tag (read once): statuses are ours by wamid or by this tag."""
        if self._tag is None:
            self._tag = await self._in_place(
                self._store.secrets.callback_tag, "reading the callback tag key"
            )
        return self._tag

    async def run(self) -> None:
        await self.recover()
        while True:
            await self.apply_once(block_ms=500)

    async def recover(self) -> None:
        """Take back payloads a dead applier read but never acked."""
        await self._in_place(lambda: self._queue.recover_stuck(min_idle_ms=0), "recovering")

    async def apply_once(self, block_ms: int | None = None) -> int:
        """Apply up to one read's worth of payloads; how many statuses were written."""
        jobs = await self._in_place(
            lambda: self._queue.read(self._consumer, count=self._batch, block_ms=block_ms),
            "reading webhooks",
        )
        if not jobs:
            return 0
        parsed: list[_Parsed] = []
        for job in jobs:
            try:
                parsed.append(_Parsed(job, list(changes(job.payload))))
            except ValueError as exc:
                await self._dead_letter(job, str(exc))
        written = await self._apply(parsed)
        await self._in_place(
            lambda: self._queue.ack([p.job.job_id for p in parsed]), "acking webhooks"
        )
        self.applied += written
        return written

    async def _apply(self, parsed: Sequence[_Parsed]) -> int:
        """Statuses of all in one write, then each payload's other fields; a payload whose
        data the database refuses is dead-lettered alone (and dropped from ``parsed``)."""
        tag = await self._callback_tag()
        updates = [u for p in parsed for u in p.statuses(tag)]
        try:
            written = await self._in_place(lambda: self._write(updates), "writing statuses")
        except Exception as exc:  # data refused: find the payload that carries it
            if len(parsed) == 1:
                await self._dead_letter(parsed[0].job, f"statuses refused: {exc}")
                return 0
            log.warning("a status batch was refused (%s): applying payloads one by one", exc)
            written = 0
            for one in parsed:
                written += await self._apply([one])
            return written
        for one in parsed:
            for change in one.changes:
                handler = self._handlers.get(change.field)
                if handler is None:
                    continue
                try:
                    await self._in_place(_bind(handler, change), f"acting on {change.field}")
                except Exception as exc:
                    log.exception(
                        "webhook %s: %s could not be applied", one.job.job_id, change.field
                    )
                    await self._dead_letter(one.job, f"{change.field}: {exc}")
                    break
        return written

    async def _write(self, updates: list[StatusUpdate]) -> int:
        if not updates:
            return 0
        await self._store.outcomes.apply_statuses(updates)
        latest = max(u.at.timestamp() for u in updates)
        if self._on_lag is not None:
            try:
                self._on_lag(self._wall_clock() - latest)
            except Exception:  # a metric must not fail a written batch (it would dead-letter it)
                log.exception("webhook lag not recorded (%d statuses written)", len(updates))
        self.watermark_s = latest if self.watermark_s is None else max(self.watermark_s, latest)
        return len(updates)

    async def _dead_letter(self, job: WebhookJob, reason: str) -> None:
        self.malformed += 1
        log.warning("webhook %s dead-lettered: %s", job.job_id, reason[:200])
        await self._in_place(
            lambda: self._queue.dead_letter(job.job_id, job.payload, reason[:500]),
            "dead-lettering a webhook",
        )

    async def _in_place(self, step: Callable[[], Awaitable[T]], what: str) -> T:
        """Run ``step`` until it does not fail for an outage; other failures propagate."""
        delay = self._retry_base_s
        while True:
            try:
                return await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self.outage_retries += 1
                log.warning("%s: a service is away (%s); retrying in %.1fs", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_cap_s)


def _bind(handler: Handler, change: Change) -> Callable[[], Awaitable[None]]:
    async def step() -> None:
        await handler(change)

    return step
