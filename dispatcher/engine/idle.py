"""Instance actors that come and go with the work: start one where work waits, stop idle ones.

A registered number costs no process until a campaign needs it. The coordinator starts its
actor when it routes a batch to it (``CoordinatorCore._route``); this sweep covers the rest:

- a number with work on its stream (waiting or delivered, not acked) but no actor gets one:
  work left by an actor that stopped as a batch arrived, by a coordinator restart, or put
  back by an operator's ``recover_stuck``;
- an actor idle for ``EngineConfig.instance_idle_stop_s`` is stopped, when nothing waits on
  its stream, no row it sent is in doubt, and the actor itself finds it holds nothing and
  sent nothing lately (checked in its own process, as it stops reading).

A stopped number's next actor is a new incarnation: it takes the next epoch
(``store/fencing.py``) when it starts, as after any restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol
from uuid import UUID

from dispatcher.engine.config import EngineConfig
from dispatcher.queue.streams import WorkQueue
from dispatcher.store import Store
from dispatcher.store.models import Instance, InstanceStatus

log = logging.getLogger(__name__)


class ActorFleet(Protocol):
    """What the sweep needs of the fleet (a part of ``InstanceFleet``)."""

    async def ensure(self, instance: Instance) -> None: ...

    def usable(self, instance_id: UUID) -> bool: ...

    def running(self) -> set[UUID]:
        """The instances with an actor now."""
        ...

    async def stop_idle(self, instance_id: UUID, idle_s: float) -> bool:
        """Stop the instance's actor if it has been idle for ``idle_s`` (it checks itself);
        True once it stopped and its process is gone."""
        ...


class IdleSweep:
    """Periodically: actors for numbers whose stream holds work, none for idle numbers."""

    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        fleet: ActorFleet,
        config: EngineConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._queue = queue
        self._fleet = fleet
        self.config = config
        self._clock = clock
        self._last = float("-inf")
        self.stopped = 0
        """Actors stopped for idleness."""
        self.started = 0
        """Actors started for work found on their stream (not by routing)."""

    def due(self) -> bool:
        return self._clock() - self._last >= self.config.idle_check_interval_s

    async def sweep(self, instances: Iterable[Instance]) -> None:
        """Look at every number once (``instances``: every registered one)."""
        self._last = self._clock()
        running = self._fleet.running()
        for instance in instances:
            if instance.id in running:
                await self._maybe_stop(instance)
            elif await self._has_work(instance.id):
                await self._start(instance)

    async def _has_work(self, instance_id: UUID) -> bool:
        stats = await self._queue.stream(instance_id).stats()
        return stats.pending > 0 or stats.processing > 0

    async def _start(self, instance: Instance) -> None:
        if instance.status is not InstanceStatus.ACTIVE or not self._fleet.usable(instance.id):
            return  # a stopped number's stream is drained by the coordinator instead
        log.info("instance %s: work waits on its stream; starting its actor", instance.id)
        await self._fleet.ensure(instance)
        self.started += 1

    async def _maybe_stop(self, instance: Instance) -> None:
        if await self._has_work(instance.id):
            # Work waits, and an actor that takes none (an idle stop whose answer was lost
            # left it stopping) is finished here, so that a new one can take the work.
            if not self._fleet.usable(instance.id) and await self._fleet.stop_idle(
                instance.id, self.config.instance_idle_stop_s
            ):
                self.stopped += 1
                await self._start(instance)
            return
        if await self._store.in_doubt.of_instance(instance.id):
            # Not lost if it stopped (the coordinator settles them), but kept: if the policy
            # resends them, this actor's pair-rate memory still covers those recipients.
            return
        if not await self._fleet.stop_idle(instance.id, self.config.instance_idle_stop_s):
            return
        self.stopped += 1
        log.info("instance %s: actor stopped (idle)", instance.id)
        # Routed while it stopped (an operator's action, a resume): a new actor takes it now.
        if await self._has_work(instance.id):
            await self._start(instance)
