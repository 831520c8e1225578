from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.store import Store
from dispatcher.store.campaigns import TRANSITIONS
from dispatcher.store.models import CampaignStatus
from tests.store.conftest import TEMPLATE

S = CampaignStatus


async def _in(store: Store, status: CampaignStatus) -> uuid.UUID:
    """A campaign brought to ``status`` through allowed transitions."""
    campaign = await store.campaigns.create("c", TEMPLATE, [])
    path = {
        S.DRAFT: [],
        S.SCHEDULED: [S.SCHEDULED],
        S.RUNNING: [S.RUNNING],
        S.PAUSED: [S.RUNNING, S.PAUSED],
        S.HELD: [S.RUNNING, S.HELD],
        S.COMPLETED: [S.RUNNING, S.COMPLETED],
        S.CANCELLED: [S.CANCELLED],
        S.FAILED: [S.FAILED],
    }[status]
    for step in path:
        assert await store.campaigns.transition(campaign.id, step)
    return campaign.id


@pytest.mark.parametrize("start", list(CampaignStatus))
@pytest.mark.parametrize("to", sorted(TRANSITIONS))
async def test_transitions_move_only_where_the_lifecycle_allows(
    store: Store, start: CampaignStatus, to: CampaignStatus
) -> None:
    campaign_id = await _in(store, start)
    moved = await store.campaigns.transition(campaign_id, to, reason="why")
    assert moved is (start in TRANSITIONS[to])
    got = await store.campaigns.get(campaign_id)
    assert got is not None
    assert got.status is (to if moved else start)
    if moved and to in (S.COMPLETED, S.CANCELLED, S.FAILED):
        assert got.finished_at is not None


async def test_a_campaign_is_created_with_its_template_and_zero_counters(store: Store) -> None:
    instance_ids = [uuid.uuid4()]
    campaign = await store.campaigns.create("black friday", TEMPLATE, instance_ids)
    assert campaign.status is S.DRAFT
    assert campaign.template == TEMPLATE
    assert campaign.instance_ids == instance_ids
    assert (campaign.total_recipients, campaign.pending, campaign.in_flight) == (0, 0, 0)
    assert await store.campaigns.get(uuid.uuid4()) is None
    assert not await store.campaigns.transition(uuid.uuid4(), S.RUNNING)


async def test_due_lists_scheduled_campaigns_whose_time_has_come(store: Store) -> None:
    now = datetime.now(UTC)
    past = await store.campaigns.create("p", TEMPLATE, [], scheduled_at=now - timedelta(minutes=1))
    future = await store.campaigns.create("f", TEMPLATE, [], scheduled_at=now + timedelta(hours=1))
    assert past.status is S.SCHEDULED
    due = {c.id for c in await store.campaigns.due(now, limit=10_000)}
    assert past.id in due
    assert future.id not in due
    assert await store.campaigns.transition(past.id, S.RUNNING)
    assert not await store.campaigns.transition(past.id, S.RUNNING)  # the second starter loses
    assert past.id not in {c.id for c in await store.campaigns.due(now, limit=10_000)}
    started = await store.campaigns.get(past.id)
    assert started is not None
    assert started.started_at is not None
