"""Redis losing its data, noticed and repaired from Postgres (the system of record).

The coordinator keeps one marker token in Postgres and in Redis. Redis without it (a restart
without persistence, a flush) lost every batch, group and dead letter: the queue is rebuilt
from the recipient rows (see :class:`~dispatcher.store.recovery.Recovery`). An operator's
``clear`` loses the batches on purpose and is repaired the same way.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

from dispatcher.engine.config import EngineConfig
from dispatcher.queue.streams import WorkQueue
from dispatcher.store import Store

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 1.0
"""How often the orphaned rows of lost batches are looked for, while there may be some."""


def orphaned_after_s(config: EngineConfig) -> float:
    """How long a ``sending`` row without a batch stays untouched before it is taken for an
    orphan: two touches of a live holder (it keeps its rows alive every touch_interval_s),
    so a row still in someone's hands is never marked."""
    return 2 * config.touch_interval_s


async def orphans_in_doubt(
    store: Store,
    config: EngineConfig,
    before: datetime | None,
    ids: list[int] | None = None,
    *,
    idle: timedelta | None = None,
    campaign_ids: list[UUID] | None = None,
) -> int:
    """Mark in doubt the ``sending`` rows (sent for before ``before``; among ``ids``; of
    ``campaign_ids``) that no live holder touched for ``idle`` (default
    :func:`orphaned_after_s`): the in-doubt policy settles them (a webhook, else resend or
    fail, after a bound tied to webhook progress). How many."""
    idle = idle if idle is not None else timedelta(seconds=orphaned_after_s(config))
    orphans = await store.recovery.orphaned_sending(before, idle, ids, campaign_ids)
    marked = await store.recovery.mark_in_doubt(orphans, idle)
    if marked:
        log.warning("%d sends of lost batches, held by nobody, are in doubt", marked)
    return marked


class QueueRecovery:
    """Checks the marker every coordinator round; rebuilds and sweeps when Redis lost it."""

    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        config: EngineConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._queue = queue
        self._config = config
        self._clock = clock
        self._token: str | None = None
        self._lost_at: datetime | None = None
        self._last_sweep = -float("inf")
        self.rebuilds = 0

    @property
    def lost_at(self) -> datetime | None:
        """When the queue last lost batches whose in-doubt rows are not all resolved."""
        return self._lost_at

    async def check(self) -> dict[str, int] | None:
        """Rebuild when Redis lost the marker; the rebuild's figures, or None when intact.

        A Redis that does not answer raises: an outage is not a loss, the caller retries.
        """
        if self._token is None:
            token, created = await self._store.recovery.marker(self._queue.prefix, uuid.uuid4().hex)
            self._lost_at = await self._store.recovery.lost_at(self._queue.prefix)
            self._token = token
            if created:  # a new deployment: nothing can have been lost yet
                await self._queue.set_marker(token)
                return None
        found = await self._queue.marker()
        if found == self._token:
            return None
        why = "its marker is gone" if found is None else "its marker belongs to another store"
        log.error("Redis lost its data (%s): rebuilding the queue from Postgres", why)
        return await self.rebuild()

    async def rebuild(self) -> dict[str, int]:
        """Every batch is gone: ``queued`` rows go back to pending now; ``sending`` ones are
        marked in doubt by :meth:`sweep` once no live holder touches them."""
        self._lost_at = await self._store.recovery.mark_lost(self._queue.prefix)
        self._queue.forget_groups()
        requeued = await self._store.recovery.requeue_queued()
        if self._token is not None:
            # Written last: a coordinator dying before this line rebuilds again (idempotent).
            await self._queue.set_marker(self._token)
        self._last_sweep = -float("inf")
        self.rebuilds += 1
        log.warning("queue rebuilt from Postgres: %d queued recipients back to pending", requeued)
        return {"requeued": requeued}

    async def sweep(self) -> int:
        """Mark in doubt the ``sending`` rows of lost batches that nobody holds; how many."""
        if self._lost_at is None or self._clock() - self._last_sweep < SWEEP_EVERY_S:
            return 0
        self._last_sweep = self._clock()
        marked = await orphans_in_doubt(self._store, self._config, self._lost_at)
        if await self._store.recovery.resolved(self._queue.prefix, self._lost_at):
            log.info("every sending row of the lost batches is settled or in doubt")
            self._lost_at = None
        return marked
