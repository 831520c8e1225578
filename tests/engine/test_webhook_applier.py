"""WebhookApplier in-process on the real Redis stream and Postgres (and an embedded PostgreSQL
of its own, stopped and started, for the outage)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from dispatcher.engine.webhooks import WebhookApplier
from dispatcher.meta.callback_tag import CallbackTag
from dispatcher.meta.webhooks import Change
from dispatcher.queue.webhooks import WebhookQueue
from dispatcher.services import EmbeddedPostgres
from dispatcher.store import Store
from dispatcher.store.models import Campaign, RecipientStatus
from tests.engine.conftest import MakeCampaign, MakeInstance, phones
from tests.engine.fakes import wait_for


def status_payload(
    tag: CallbackTag, recipient_ids: list[int], status: str = "delivered", **extra: Any
) -> dict:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "waba-1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "statuses": [
                                {
                                    "id": f"wamid.unknown-{i}",
                                    "status": status,
                                    "timestamp": "1750030081",
                                    "recipient_id": "5511900000000",
                                    "biz_opaque_callback_data": tag.make(i),
                                    **extra,
                                }
                                for i in recipient_ids
                            ],
                        },
                    }
                ],
            }
        ],
    }


async def campaign_ids(
    store: Store, make_instance: MakeInstance, make_campaign: MakeCampaign, n: int
) -> tuple[Campaign, list[int]]:
    campaign = await make_campaign([await make_instance()], n)
    rows = await store.recipients.page(campaign.id, limit=n)
    return campaign, [r.id for r in rows]


async def test_statuses_of_a_read_are_applied_in_bulk(
    tag: CallbackTag,
    store: Store,
    webhook_queue: WebhookQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    campaign, ids = await campaign_ids(store, make_instance, make_campaign, 60)
    await webhook_queue.push_many([status_payload(tag, ids[i : i + 3]) for i in range(0, 60, 3)])
    applier = WebhookApplier(store, webhook_queue)
    assert await applier.apply_once() == 60  # twenty payloads, one read, one write
    counts = await store.recipients.count_by_status(campaign.id)
    assert counts[RecipientStatus.DELIVERED] == 60
    stats = await webhook_queue.stats()
    assert (stats.pending, stats.processing, stats.dlq) == (0, 0, 0)


async def test_a_malformed_payload_is_dead_lettered_alone(
    tag: CallbackTag,
    store: Store,
    webhook_queue: WebhookQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    campaign, ids = await campaign_ids(store, make_instance, make_campaign, 6)
    refused = status_payload(tag, ids[4:5], status="failed", errors=[{"code": 2**40, "title": "x"}])
    await webhook_queue.push_many(
        [
            status_payload(tag, ids[:2]),
            {"not": "meta"},  # not Meta's shape
            status_payload(tag, ids[2:4]),
            refused,  # Meta's shape, but data the database refuses (an int4 error code)
            status_payload(tag, ids[5:]),
        ]
    )
    applier = WebhookApplier(store, webhook_queue)
    assert await applier.apply_once() == 5
    counts = await store.recipients.count_by_status(campaign.id)
    assert counts[RecipientStatus.DELIVERED] == 5
    assert (await store.recipients.statuses(ids[4:5]))[ids[4]] is RecipientStatus.PENDING
    stats = await webhook_queue.stats()
    assert (stats.pending, stats.processing, stats.dlq) == (0, 0, 2)
    assert applier.malformed == 2


async def test_a_handler_registered_for_a_field_is_called(
    store: Store, webhook_queue: WebhookQueue
) -> None:
    seen: list[Change] = []

    async def on_quality(change: Change) -> None:
        seen.append(change)

    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "waba-7",
                "changes": [
                    {"field": "phone_number_quality_update", "value": {"event": "UPGRADE"}},
                    {"field": "unhandled_field", "value": {"x": 1}},
                ],
            }
        ],
    }
    await webhook_queue.push(payload)
    applier = WebhookApplier(
        store, webhook_queue, handlers={"phone_number_quality_update": on_quality}
    )
    assert await applier.apply_once() == 0
    [change] = seen
    assert (change.field, change.value, change.entry_id) == (
        "phone_number_quality_update",
        {"event": "UPGRADE"},
        "waba-7",
    )
    assert (await webhook_queue.stats()).dlq == 0


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own: it will be stopped under the applier."""
    server = EmbeddedPostgres(tmp_path / "pg")
    server.ensure_running()
    yield server
    server.stop()


async def test_through_a_postgres_outage_nothing_is_dead_lettered_and_all_is_applied(
    own_postgres: EmbeddedPostgres, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    url = own_postgres.url()
    assert url is not None
    store = await Store.open(url, max_size=2)
    try:
        instance = await store.instances.upsert("pn-outage", "biz-outage", "token-outage")
        campaign = await store.campaigns.create(
            "outage", {"name": "t", "language": "en_US"}, [instance.id]
        )
        await store.recipients.ingest(campaign.id, phones(30))
        ids = [r.id for r in await store.recipients.page(campaign.id, limit=30)]
        tag = await store.secrets.callback_tag()
        queue = WebhookQueue(redis_client, prefix=redis_prefix)
        applier = WebhookApplier(store, queue, retry_base_s=0.05, retry_cap_s=0.2)

        await asyncio.to_thread(own_postgres.stop)
        await queue.push_many([status_payload(tag, ids[i : i + 3]) for i in range(0, 30, 3)])
        applying = asyncio.create_task(applier.apply_once())
        await wait_for(lambda: applier.outage_retries >= 3)
        assert not applying.done()
        assert (await queue.stats()).dlq == 0

        await asyncio.to_thread(own_postgres.ensure_running)
        assert await asyncio.wait_for(applying, 30) == 30
        counts = await store.recipients.count_by_status(campaign.id)
        assert counts[RecipientStatus.DELIVERED] == 30
        stats = await queue.stats()
        assert (stats.pending, stats.processing, stats.dlq) == (0, 0, 0)
        assert applier.malformed == 0
    finally:
        await store.close()


async def test_bare_or_forged_callback_data_moves_nothing(
    tag: CallbackTag,
    store: Store,
    webhook_queue: WebhookQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    """Another sender's statuses (unknown wamids) with our ids as bare numbers, or as tags
    under another key: nothing moves; ours, tagged, do."""
    _, ids = await campaign_ids(store, make_instance, make_campaign, 6)
    foreign = CallbackTag(b"f" * 32)
    bare = status_payload(tag, ids[:2])
    for status in bare["entry"][0]["changes"][0]["value"]["statuses"]:
        status["biz_opaque_callback_data"] = status["biz_opaque_callback_data"].split(".")[1]
    await webhook_queue.push_many(
        [bare, status_payload(foreign, ids[2:4]), status_payload(tag, ids[4:])]
    )
    applier = WebhookApplier(store, webhook_queue)
    await applier.apply_once()
    statuses = await store.recipients.statuses(ids)
    assert [statuses[i] for i in ids] == [RecipientStatus.PENDING] * 4 + [
        RecipientStatus.DELIVERED
    ] * 2


async def test_the_lag_of_each_write_is_told_from_its_newest_status(
    tag: CallbackTag,
    store: Store,
    webhook_queue: WebhookQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    _, ids = await campaign_ids(store, make_instance, make_campaign, 4)
    older = status_payload(tag, ids[:2])  # Meta's timestamp 1750030081
    newer = status_payload(tag, ids[2:])
    for status in newer["entry"][0]["changes"][0]["value"]["statuses"]:
        status["timestamp"] = "1750030090"
    await webhook_queue.push_many([older, newer])
    lags: list[float] = []
    applier = WebhookApplier(
        store, webhook_queue, on_lag=lags.append, wall_clock=lambda: 1750030093.5
    )
    assert await applier.apply_once() == 4
    assert lags == [3.5]  # one write; its newest status was 3.5 s old when written
    assert await applier.apply_once() == 0
    assert lags == [3.5]  # nothing written, nothing told


async def test_a_failing_lag_callback_leaves_the_statuses_applied(
    tag: CallbackTag,
    store: Store,
    webhook_queue: WebhookQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, ids = await campaign_ids(store, make_instance, make_campaign, 3)
    await webhook_queue.push_many([status_payload(tag, ids)])

    def broken(lag_s: float) -> None:
        raise RuntimeError(f"metrics away ({lag_s})")

    applier = WebhookApplier(store, webhook_queue, on_lag=broken)
    assert await applier.apply_once() == 3
    statuses = await store.recipients.statuses(ids)
    assert [statuses[i] for i in ids] == [RecipientStatus.DELIVERED] * 3
    assert applier.malformed == 0
    assert (await webhook_queue.stats()).dlq == 0
    assert applier.watermark_s is not None
    assert "webhook lag not recorded (3 statuses written)" in caplog.text
