"""Reads what the coordinator knows, every few seconds, and hands new conditions to the sender.

Started by the coordinator's tick (:meth:`AlertWatch.poke`), run as a task of its own: a
slow query here never delays routing. Reads: the portfolios the coordinator holds in memory,
the instance actors' last stats, the stopped numbers, held and just-finished campaigns, the
dead-letter count. A failed read is logged and tried again next time; nothing reaches the
coordinator.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from dispatcher.alerts.config import AlertConfig
from dispatcher.alerts.events import Alert
from dispatcher.alerts.rules import AlertRules, Snapshot
from dispatcher.alerts.sender import AlertSender
from dispatcher.queue.streams import WorkQueue
from dispatcher.store import Store
from dispatcher.store.models import CampaignStatus, InstanceStatus

log = logging.getLogger(__name__)

MIN_LOOKBACK_S = 60.0
"""Campaigns finished this long ago (at least) are looked for: one missed check loses none."""


class AlertWatch:
    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        sender: AlertSender,
        *,
        portfolios: Callable[[], Mapping[str, Mapping[str, Any]]] = dict,
        instance_stats: Callable[[], Mapping[UUID, Mapping[str, Any]]] = dict,
        config: AlertConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._queue = queue
        self.sender = sender
        self.config = config or sender.config
        self.rules = AlertRules(self.config.dead_letters_threshold)
        self._portfolios = portfolios
        self._instance_stats = instance_stats
        self._clock = clock
        self._last = -float("inf")
        self._task: asyncio.Task[list[Alert]] | None = None
        self.checks = 0

    def poke(self) -> None:
        """Start a check in the background if one is due and none is running; never waits."""
        if not self.sender.enabled or (self._task is not None and not self._task.done()):
            return
        if self._clock() - self._last < self.config.check_interval_s:
            return
        self._last = self._clock()
        self._task = asyncio.create_task(self.check(), name="alert-watch")

    async def idle(self) -> None:
        """Until the check in flight, if any, is over."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def check(self) -> list[Alert]:
        """Read the state, submit what began since the last check; the alerts submitted."""
        try:
            snapshot = await self.snapshot()
        except Exception as exc:  # Postgres or Redis away: the next check reads again
            log.warning("alert check skipped: %s", type(exc).__name__)
            return []
        for alert in self.sender.take_rearmed():  # nobody got it: raise it again if it holds
            self.rules.rearm(alert)
        submitted = [a for a in self.rules.changes(snapshot) if self.sender.submit(a)]
        self.checks += 1
        return submitted

    async def snapshot(self) -> Snapshot:
        lookback = max(MIN_LOOKBACK_S, 3 * self.config.check_interval_s)
        campaigns = self._store.campaigns
        return Snapshot(
            instance_stats={str(k): v for k, v in self._instance_stats().items()},
            stopped_numbers=await self._store.instances.all(status=InstanceStatus.ERROR),
            portfolios=self._portfolios(),
            held_campaigns=await campaigns.page(status=CampaignStatus.HELD, limit=1_000),
            finished_campaigns=await campaigns.finished_within(lookback),
            dead_letters=(await self._queue.stats()).dlq,
        )

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
