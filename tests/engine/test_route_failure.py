"""A send whose immediate routing meets a Redis outage: it took effect, nothing is stranded."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from dispatcher.engine.config import EngineConfig
from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.queue.streams import WorkQueue
from dispatcher.store import Store
from dispatcher.store.models import CampaignStatus, RecipientStatus
from tests.engine.conftest import MakeCampaign, MakeInstance
from tests.engine.fakes import FakeClock, FakeFleet


async def test_a_send_routed_while_redis_is_away_runs_and_strands_no_row(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instance = await make_instance()
    campaign = await make_campaign([instance], 30)
    core = CoordinatorCore(store, work_queue, FakeFleet(), EngineConfig(), FakeClock())

    async def away(*args: object, **kwargs: object) -> str:
        raise RedisConnectionError("Redis is restarting")

    monkeypatch.setattr(work_queue, "enqueue", away)
    assert await core.start_campaign(campaign.id)  # no error: the send took effect
    found = await store.campaigns.get(campaign.id)
    assert found is not None
    assert found.status is CampaignStatus.RUNNING
    counts = await store.recipients.count_by_status(campaign.id)
    assert counts[RecipientStatus.QUEUED] == 0  # no row waits for a batch that never was
    assert counts[RecipientStatus.PENDING] == 30

    monkeypatch.undo()
    await core.tick()  # Redis back: the tick routes it
    counts = await store.recipients.count_by_status(campaign.id)
    assert counts[RecipientStatus.QUEUED] == 30
