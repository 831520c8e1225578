"""The coordinator's Ray metrics (Prometheus sees them as ``ray_dispatcher_*``).

Published by the active coordinator on its stats loop (every ``stats_interval_s``): campaign
progress and send rate, portfolios' 24 h use against their limit, queue depths; observed as
they happen: the duration of each coordinator tick and the lag of applied webhook statuses.
The dashboard that reads them is ``ops/grafana/dispatcher.json``.

Cardinality: campaign series exist for running campaigns; a campaign that stops running is
set to its final figures (send rate 0) once and no longer updated. Ray keeps exporting a
series' last value for the life of the process, so finished campaigns stay visible at their
final figures until the coordinator restarts (one series per status per campaign run by this
coordinator process). Portfolio series follow the portfolios the coordinator gated, queue
series the instances with a stream.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ray.util.metrics import Gauge, Histogram

from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.engine.progress import CampaignProgress
from dispatcher.queue import Queues
from dispatcher.queue.stream import StreamStats
from dispatcher.queue.streams import QueueStats
from dispatcher.store import Store

TICK_BOUNDARIES_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
LAG_BOUNDARIES_S = [0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0]
ALL_INSTANCES = "all"
"""``instance_id`` of a queue's total (the webhooks queue has no per-instance split)."""


class CoordinatorMetrics:
    """The coordinator's metrics; one per coordinator process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.progress = CampaignProgress(clock)
        campaign = ("campaign_id",)
        self.campaign_recipients = Gauge(
            "dispatcher_campaign_recipients",
            "a campaign's recipients by status (sent/delivered/read/failed are counters)",
            ("campaign_id", "status"),
        )
        self.campaign_total = Gauge(
            "dispatcher_campaign_total_recipients", "a campaign's recipients, all", campaign
        )
        self.campaign_rate = Gauge(
            "dispatcher_campaign_send_rate_mps",
            "messages Meta accepted per second since the last stats round",
            campaign,
        )
        portfolio = ("business_id", "source")
        self.portfolio_used = Gauge(
            "dispatcher_portfolio_daily_used",
            "unique recipients reserved in the portfolio's moving 24 h window",
            portfolio,
        )
        self.portfolio_limit = Gauge(
            "dispatcher_portfolio_daily_limit",
            "the portfolio's messaging limit (source: where it came from)",
            portfolio,
        )
        depth = ("queue", "instance_id")
        self.queue_pending = Gauge("dispatcher_queue_pending", "batches waiting", depth)
        self.queue_processing = Gauge(
            "dispatcher_queue_processing", "batches read, not acknowledged", depth
        )
        self.queue_dead = Gauge("dispatcher_queue_dead_letters", "dead letters", depth)
        self.webhook_lag = Gauge(
            "dispatcher_webhook_lag_latest_s",
            "seconds from Meta's timestamp of the newest status in the last applied batch "
            "to its write",
        )
        self.webhook_lag_hist = Histogram(
            "dispatcher_webhook_lag_s",
            "seconds from Meta's timestamp of the newest status of each applied batch to its write",
            boundaries=LAG_BOUNDARIES_S,
        )
        self.tick_duration = Histogram(
            "dispatcher_coordinator_tick_s",
            "duration of one coordinator tick (route, recover, complete)",
            boundaries=TICK_BOUNDARIES_S,
        )

    def observe_webhook_lag(self, lag_s: float) -> None:
        lag_s = max(0.0, lag_s)  # Meta's timestamps are whole seconds
        self.webhook_lag.set(lag_s)
        self.webhook_lag_hist.observe(lag_s)

    def timed(self, step: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """``step`` with its duration observed as a coordinator tick (failed ones too)."""

        @functools.wraps(step)
        async def run() -> None:
            began = self._clock()
            try:
                await step()
            finally:
                self.tick_duration.observe(self._clock() - began)

        return run

    async def publish(self, core: CoordinatorCore, store: Store, queues: Queues) -> None:
        """One stats round: campaigns, portfolios, queues."""
        await self._publish_campaigns(store)
        self._publish_portfolios(core.portfolio_stats())
        for name, queue in (await queues.stats()).items():
            self._depth(name, ALL_INSTANCES, queue)
            for instance_id, one in queue.instances.items():
                self._depth(name, instance_id, one)

    async def _publish_campaigns(self, store: Store) -> None:
        running = await store.campaigns.running()
        ended = []
        for campaign_id in self.progress.left(running):
            campaign = await store.campaigns.get(campaign_id)
            if campaign is None:
                self.progress.forget([campaign_id])
            else:
                ended.append(campaign)
        for sample in self.progress.update(running, ended):
            tags = {"campaign_id": sample.campaign_id}
            self.campaign_total.set(sample.total, tags)
            self.campaign_rate.set(sample.send_rate_mps, tags)
            for status, count in sample.by_status.items():
                self.campaign_recipients.set(count, {**tags, "status": status})

    def _publish_portfolios(self, portfolios: dict[str, dict[str, Any]]) -> None:
        for business_id, stats in portfolios.items():
            if stats["daily_limit"] is None:  # unlimited: nothing to run out of
                continue
            tags = {"business_id": business_id, "source": stats["limit_source"] or "unknown"}
            self.portfolio_limit.set(stats["daily_limit"], tags)
            self.portfolio_used.set(stats["daily_unique_used"], tags)

    def _depth(self, queue: str, instance_id: str, stats: QueueStats | StreamStats) -> None:
        tags = {"queue": queue, "instance_id": instance_id}
        self.queue_pending.set(stats.pending, tags)
        self.queue_processing.set(stats.processing, tags)
        self.queue_dead.set(stats.dlq, tags)
