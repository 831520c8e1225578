"""The coordinator's gauges across a failover: published with its ``holder`` and lease epoch
while it acts, all set to 0 once another coordinator holds the lease, kept (not zeroed) while
the lease merely lapsed. ``published`` mirrors every value set on Ray's gauges (what Ray
exports is checked by ``test_metrics.py``). Ticks are timed only while acting."""

from __future__ import annotations

from actors.metrics import ALL_INSTANCES, CoordinatorMetrics
from dispatcher.queue.streams import QueueStats
from dispatcher.store.models import CampaignStatus
from tests.alerts.test_sender import campaign
from tests.clock import FakeClock

EPOCH = "dispatcher_coordinator_lease_epoch"


def acting(holder: str = "host:1:aaaa", clock: FakeClock | None = None) -> CoordinatorMetrics:
    """A coordinator's metrics after it took the lease (epoch 4) and published a round."""
    metrics = CoordinatorMetrics(holder, "eu-prod", clock or FakeClock())
    metrics.follow_lease(True, 4, taken_by_other=False)
    running = campaign(CampaignStatus.RUNNING)
    metrics._publish_campaigns([running], [])
    metrics._publish_portfolios(
        {"biz-1": {"daily_limit": 1000, "daily_unique_used": 250, "limit_source": "api"}}
    )
    metrics._depth("campaigns", ALL_INSTANCES, QueueStats(pending=3, processing=2, dlq=1))
    metrics.observe_webhook_lag(2.5)
    return metrics


def nonzero(metrics: CoordinatorMetrics) -> set[str]:
    return {name for (name, _), value in metrics.published.items() if value}


def test_an_acting_coordinator_publishes_every_kind_with_its_epoch() -> None:
    metrics = acting()
    assert metrics.published[(EPOCH, ())] == 4
    assert nonzero(metrics) >= {
        EPOCH,
        "dispatcher_campaign_recipients",
        "dispatcher_campaign_total_recipients",
        "dispatcher_portfolio_daily_used",
        "dispatcher_portfolio_daily_limit",
        "dispatcher_queue_pending",
        "dispatcher_queue_processing",
        "dispatcher_queue_dead_letters",
        "dispatcher_webhook_lag_latest_s",
    }
    for gauge in metrics._gauges.values():
        assert gauge.info["default_tags"] == {"holder": "host:1:aaaa", "deployment": "eu-prod"}


def test_losing_the_lease_to_another_zeroes_every_series_it_published() -> None:
    metrics = acting()
    series = set(metrics.published)
    metrics.follow_lease(False, 4, taken_by_other=True)
    assert set(metrics.published) == series
    assert nonzero(metrics) == set()
    metrics.observe_webhook_lag(9.0)  # a late batch: not published by a standby
    assert nonzero(metrics) == set()
    assert not metrics.acting


def test_a_lapsed_lease_keeps_the_last_figures_and_publishes_nothing_new() -> None:
    metrics = acting()
    before = dict(metrics.published)
    metrics.follow_lease(False, 4, taken_by_other=False)  # Postgres away: nobody took it
    metrics.observe_webhook_lag(9.0)
    assert metrics.published == before
    assert not metrics.acting


def test_a_new_term_publishes_its_epoch_again() -> None:
    metrics = acting()
    metrics.follow_lease(False, 4, taken_by_other=True)
    metrics.follow_lease(True, 6, taken_by_other=False)
    assert metrics.published[(EPOCH, ())] == 6
    assert metrics.progress.tracked == set()  # every running campaign is published afresh


class Observed:
    """Stands in for Ray's histogram: what was observed."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def observe(self, value: float) -> None:
        self.values.append(value)


async def test_only_the_acting_coordinators_ticks_are_timed() -> None:
    clock = FakeClock()
    metrics = acting(clock=clock)
    assert metrics.tick_duration.info["default_tags"] == {"deployment": "eu-prod"}
    observed = Observed()
    metrics.tick_duration = observed  # type: ignore[assignment]

    async def tick() -> None:
        clock.advance(0.25)

    timed = metrics.timed(tick)
    await timed()
    metrics.follow_lease(False, 4, taken_by_other=True)  # standing by from now on
    for _ in range(5):
        await timed()
    assert observed.values == [0.25]
