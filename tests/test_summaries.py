"""The demo's and the SDK's campaign summaries: suppressed recipients are settled (never
sent, final) and shown next to the duplicates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from rich.console import Console

from dispatcher.demo import _summary
from dispatcher.sdk import _detail
from dispatcher.store.models import Campaign, CampaignStatus


def finished(*, sent: int, failed: int, duplicates: int, suppressed: int) -> Campaign:
    now = datetime.now(UTC)
    return Campaign(
        id=uuid.uuid4(),
        name="summary",
        status=CampaignStatus.COMPLETED,
        status_reason=None,
        template={},
        instance_ids=[],
        scheduled_at=None,
        total_recipients=sent + failed + duplicates + suppressed,
        total_sent=sent,
        total_delivered=0,
        total_read=0,
        total_failed=failed,
        total_duplicates=duplicates,
        pending=0,
        queued=0,
        sending=0,
        created_at=now,
        updated_at=now,
        started_at=now,
        finished_at=now,
        total_suppressed=suppressed,
    )


def test_suppressed_recipients_are_settled_and_shown() -> None:
    campaign = finished(sent=90, failed=3, duplicates=2, suppressed=5)
    console = Console(record=True, width=200)
    audit = {
        "numbers": {},
        "accepted": 90,
        "duplicate_sends": 0,
        "throughput_violations": 0,
        "pair_violations": 0,
        "tier_violations": 0,
        "webhook_statuses": 90,
    }
    _summary(console, campaign, {"instances": {}, "portfolios": {}}, audit, 1.0, [])
    out = console.export_text()
    assert "wait for their portfolio" not in out  # nobody waits: the 5 were suppressed
    assert "suppressed" in out
    assert "suppressed 5" in _detail(campaign, 10.0)
