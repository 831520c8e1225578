"""CampaignProgress: send rate from successive rounds, final figures once, then forgotten."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from dispatcher.engine.progress import COUNTED, CampaignProgress
from dispatcher.store.models import Campaign, CampaignStatus
from tests.clock import FakeClock

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def campaign(sent: int = 0, pending: int = 100) -> Campaign:
    return Campaign(
        id=uuid.uuid4(),
        name="c",
        status=CampaignStatus.RUNNING,
        status_reason=None,
        template={},
        instance_ids=[],
        scheduled_at=None,
        total_recipients=100,
        total_sent=sent,
        total_delivered=0,
        total_read=0,
        total_failed=0,
        total_duplicates=0,
        pending=pending,
        queued=0,
        sending=0,
        created_at=NOW,
        updated_at=NOW,
        started_at=None,
        finished_at=None,
    )


def test_the_rate_is_the_sends_between_two_rounds_over_their_interval() -> None:
    clock = FakeClock()
    progress = CampaignProgress(clock)
    c = campaign()
    (first,) = progress.update([c], [])
    assert first.send_rate_mps == 0.0  # no earlier round to compare with
    assert first.by_status["pending"] == 100
    assert set(first.by_status) == set(COUNTED)
    clock.advance(2.0)
    (second,) = progress.update([replace(c, total_sent=50, pending=50)], [])
    assert second.send_rate_mps == 25.0
    assert second.by_status["sent"] == 50
    assert second.total == 100
    clock.advance(1.0)
    (third,) = progress.update([replace(c, total_sent=50, pending=50)], [])
    assert third.send_rate_mps == 0.0


def test_a_campaign_that_stops_running_is_published_once_with_its_final_figures() -> None:
    clock = FakeClock()
    progress = CampaignProgress(clock)
    a, b = campaign(), campaign()
    progress.update([a, b], [])
    clock.advance(1.0)
    assert progress.left([b]) == {a.id}
    done = replace(a, status=CampaignStatus.COMPLETED, total_sent=100, pending=0)
    samples = progress.update([b], [done])
    final = [s for s in samples if s.final]
    assert [s.campaign_id for s in final] == [str(a.id)]
    assert final[0].send_rate_mps == 0.0
    assert final[0].by_status["sent"] == 100
    assert progress.tracked == {b.id}
    assert progress.left([b]) == set()  # not published again


def test_a_campaign_gone_before_its_final_round_is_forgotten() -> None:
    progress = CampaignProgress(FakeClock())
    a = campaign()
    progress.update([a], [])
    progress.forget(progress.left([]))
    assert progress.tracked == set()


def test_every_recipient_is_in_a_published_status_expired_ones_too() -> None:
    """Recipients left once a campaign is done: sent, failed, or never sent for a reason
    (duplicate, suppressed, invalid, expired); none may be missing from the metrics."""
    done = replace(
        campaign(sent=40, pending=0),
        status=CampaignStatus.COMPLETED,
        total_failed=10,
        total_duplicates=5,
        total_suppressed=5,
        total_invalid=10,
        total_expired=30,
    )
    (sample,) = CampaignProgress(FakeClock()).update([], [done])
    never_sent = ("failed", "duplicates", "suppressed", "invalid", "expired")
    assert sample.by_status["expired"] == 30
    assert sample.by_status["sent"] + sum(sample.by_status[s] for s in never_sent) == sample.total
