"""The coordinator's Ray metrics (Prometheus sees them as ``ray_dispatcher_*``).

Published by the active coordinator on its stats loop (every ``stats_interval_s``): campaign
progress and send rate, portfolios' 24 h use against their limit, queue depths; observed as
they happen: the duration of each coordinator tick and the lag of applied webhook statuses.
The dashboard that reads them is ``ops/grafana/dispatcher.json``.

How long Ray exports a gauge: Ray's metrics agent (2.60, OpenTelemetry) drops a gauge value
not set again within two export intervals (about 20 s by default; ``test_metrics.py`` sees
it), and offers no way to remove one sooner. Portfolio, queue and running campaigns' series
are set every round, so they stay. A campaign that stops running is set to its final
figures (send rate 0) once, then no longer: it leaves the dashboard about 20 s later, and
after a failover the new holder never publishes the campaigns that finished before it took
over (its ``CampaignProgress`` starts empty). Finished campaigns' figures are in Postgres:
the API, the CLI and the console show them.

Deployments: every series carries ``deployment`` (``Deployment.label``: the configured
``DISPATCHER_DEPLOYMENT_NAME``, else the database's ``host:port/name``), so one Prometheus may
scrape several deployments and a dashboard picks one.

Failover: a coordinator that loses its lease to another (standing by, its process alive)
would go on exporting its last campaign, portfolio and queue figures next to the new holder's
until they age out, and a dashboard's ``sum`` would count them twice. So every gauge carries
the ``holder`` tag (the lease holder id), ``dispatcher_coordinator_lease_epoch{deployment,
holder}`` says which holder's series are current (its lease epoch while it holds the lease, 0
after), and a coordinator that stops acting sets every series it published to 0 at once. The
dashboard keeps, per deployment, the series of the holder with the highest epoch, which also
hides those of a coordinator that died without zeroing them (a crashed process: its last
values linger). The histograms count the acting coordinator's work only: a standby's tick (a
lease check) is not observed.
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
from dispatcher.store.models import Campaign

TICK_BOUNDARIES_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
LAG_BOUNDARIES_S = [0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0]
ALL_INSTANCES = "all"
"""``instance_id`` of a queue's total (the webhooks queue has no per-instance split)."""


HOLDER = "holder"
"""The tag that names the coordinator (lease holder) that published a series."""
DEPLOYMENT = "deployment"
"""The tag that names the deployment (``Deployment.label``) of a series."""

Series = tuple[str, tuple[tuple[str, str], ...]]
"""A gauge's name and its tags (sorted)."""


class CoordinatorMetrics:
    """The coordinator's metrics; one per coordinator process, ``holder`` its lease holder id,
    ``deployment`` its deployment's label."""

    def __init__(
        self, holder: str, deployment: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.holder = holder
        self.deployment = deployment
        self._clock = clock
        self.progress = CampaignProgress(clock)
        self.acting = False
        """Whether this coordinator holds the lease (as of its last tick): it publishes only
        then."""
        self.published: dict[Series, float] = {}
        """Every gauge series this process set, with its last value: what Ray exports."""
        self._gauges: dict[str, Gauge] = {}
        self.lease_epoch = self._gauge(
            "dispatcher_coordinator_lease_epoch",
            "the lease epoch of the coordinator while it holds the lease, 0 otherwise: "
            "the series of the holder with the highest epoch are the current ones",
            (),
        )
        campaign = ("campaign_id",)
        self.campaign_recipients = self._gauge(
            "dispatcher_campaign_recipients",
            "a campaign's recipients by status (sent/delivered/read/failed are counters)",
            ("campaign_id", "status"),
        )
        self.campaign_total = self._gauge(
            "dispatcher_campaign_total_recipients", "a campaign's recipients, all", campaign
        )
        self.campaign_rate = self._gauge(
            "dispatcher_campaign_send_rate_mps",
            "messages Meta accepted per second since the last stats round",
            campaign,
        )
        portfolio = ("business_id", "source")
        self.portfolio_used = self._gauge(
            "dispatcher_portfolio_daily_used",
            "unique recipients reserved in the portfolio's moving 24 h window",
            portfolio,
        )
        self.portfolio_limit = self._gauge(
            "dispatcher_portfolio_daily_limit",
            "the portfolio's messaging limit (source: where it came from)",
            portfolio,
        )
        depth = ("queue", "instance_id")
        self.queue_pending = self._gauge("dispatcher_queue_pending", "batches waiting", depth)
        self.queue_processing = self._gauge(
            "dispatcher_queue_processing", "batches read, not acknowledged", depth
        )
        self.queue_dead = self._gauge("dispatcher_queue_dead_letters", "dead letters", depth)
        self.webhook_lag = self._gauge(
            "dispatcher_webhook_lag_latest_s",
            "seconds from Meta's timestamp of the newest status in the last applied batch "
            "to its write",
            (),
        )
        self.webhook_lag_hist = self._histogram(
            "dispatcher_webhook_lag_s",
            "seconds from Meta's timestamp of the newest status of each applied batch to its write",
            LAG_BOUNDARIES_S,
        )
        self.tick_duration = self._histogram(
            "dispatcher_coordinator_tick_s",
            "duration of one tick of the coordinator holding the lease (route, recover, "
            "complete); a standby's are not counted",
            TICK_BOUNDARIES_S,
        )

    def _gauge(self, name: str, description: str, tag_keys: tuple[str, ...]) -> Gauge:
        gauge = Gauge(name, description, (*tag_keys, DEPLOYMENT, HOLDER))
        gauge.set_default_tags({DEPLOYMENT: self.deployment, HOLDER: self.holder})
        self._gauges[name] = gauge
        return gauge

    def _histogram(self, name: str, description: str, boundaries: list[float]) -> Histogram:
        histogram = Histogram(name, description, boundaries, (DEPLOYMENT,))
        histogram.set_default_tags({DEPLOYMENT: self.deployment})
        return histogram

    def _set(self, gauge: Gauge, value: float, tags: dict[str, str] | None = None) -> None:
        tags = tags or {}
        gauge.set(value, tags)
        self.published[(gauge.info["name"], tuple(sorted(tags.items())))] = value

    def follow_lease(self, active: bool, epoch: int | None, *, taken_by_other: bool) -> None:
        """After each lease check: publish only while acting, with the lease epoch. Once
        another coordinator holds the lease, zero every series this one published (see the
        module docstring). A lease merely lapsed (Postgres away: nobody can take it) keeps
        the last figures: they are still the latest there are."""
        self.acting = active
        if active:
            self._set(self.lease_epoch, epoch or 0)
        elif taken_by_other and any(self.published.values()):
            self.stand_down()

    def stand_down(self) -> None:
        """Every series this coordinator published to 0: another one publishes now."""
        self.acting = False
        for (name, tags), value in self.published.items():
            if value:
                self._gauges[name].set(0, dict(tags))
        self.published = dict.fromkeys(self.published, 0.0)
        # A new term publishes every running campaign again, from its figures then.
        self.progress = CampaignProgress(self._clock)

    def observe_webhook_lag(self, lag_s: float) -> None:
        lag_s = max(0.0, lag_s)  # Meta's timestamps are whole seconds
        self.webhook_lag_hist.observe(lag_s)
        if self.acting:
            self._set(self.webhook_lag, lag_s)

    def timed(self, step: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """``step`` with its duration observed as a coordinator tick (failed ones too), when
        this coordinator acted in it: a standby's tick returns at once, and counting it would
        add a standby's rate to the ticks per second and pull the quantiles down."""

        @functools.wraps(step)
        async def run() -> None:
            began = self._clock()
            try:
                await step()
            finally:
                if self.acting:
                    self.tick_duration.observe(self._clock() - began)

        return run

    async def publish(self, core: CoordinatorCore, store: Store, queues: Queues) -> None:
        """One stats round: campaigns, portfolios, queues. Read first, then set, and only
        while acting: a lease lost during the reads must not publish after the zeroing."""
        running, ended = await self._campaigns(store)
        queue_stats = await queues.stats()
        if not self.acting:
            return
        self._publish_campaigns(running, ended)
        self._publish_portfolios(core.portfolio_stats())
        for name, queue in queue_stats.items():
            self._depth(name, ALL_INSTANCES, queue)
            for instance_id, one in queue.instances.items():
                self._depth(name, instance_id, one)

    async def _campaigns(self, store: Store) -> tuple[list[Campaign], list[Campaign]]:
        """The running campaigns, and those that left ``running`` since the last round."""
        running = await store.campaigns.running()
        ended = []
        for campaign_id in self.progress.left(running):
            campaign = await store.campaigns.get(campaign_id)
            if campaign is None:
                self.progress.forget([campaign_id])
            else:
                ended.append(campaign)
        return running, ended

    def _publish_campaigns(self, running: list[Campaign], ended: list[Campaign]) -> None:
        for sample in self.progress.update(running, ended):
            tags = {"campaign_id": sample.campaign_id}
            self._set(self.campaign_total, sample.total, tags)
            self._set(self.campaign_rate, sample.send_rate_mps, tags)
            for status, count in sample.by_status.items():
                self._set(self.campaign_recipients, count, {**tags, "status": status})

    def _publish_portfolios(self, portfolios: dict[str, dict[str, Any]]) -> None:
        for business_id, stats in portfolios.items():
            if stats["daily_limit"] is None:  # unlimited: nothing to run out of
                continue
            tags = {"business_id": business_id, "source": stats["limit_source"] or "unknown"}
            self._set(self.portfolio_limit, stats["daily_limit"], tags)
            self._set(self.portfolio_used, stats["daily_unique_used"], tags)

    def _depth(self, queue: str, instance_id: str, stats: QueueStats | StreamStats) -> None:
        tags = {"queue": queue, "instance_id": instance_id}
        self._set(self.queue_pending, stats.pending, tags)
        self._set(self.queue_processing, stats.processing, tags)
        self._set(self.queue_dead, stats.dlq, tags)
