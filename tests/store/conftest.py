"""Factories over the session's store: every test works on campaigns and instances of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from dispatcher.services import ServiceUrls
from dispatcher.store import Store
from dispatcher.store.db import create_database, drop_database
from dispatcher.store.models import Campaign, CampaignStatus, Instance, NewRecipient

TEMPLATE = {"name": "promo", "language": {"code": "pt_BR"}, "components": []}


@dataclass(frozen=True, slots=True)
class World:
    """One instance of a fresh portfolio and one campaign sending from it."""

    instance: Instance
    campaign: Campaign


MakeWorld = Callable[..., Awaitable[World]]


def phones(n: int, start: int = 0) -> list[NewRecipient]:
    return [NewRecipient(phone=f"+55119{start + i:08d}") for i in range(n)]


@pytest.fixture(scope="session")
async def store(service_urls: ServiceUrls) -> AsyncIterator[Store]:
    """The store tests' own database: the session's stack (a live coordinator) works on the
    shared one and would complete or route their running campaigns under them."""
    name = f"dispatcher_store_{uuid.uuid4().hex[:12]}"
    url = await create_database(service_urls.database_url, name)
    opened = await Store.open(url, max_size=8)
    yield opened
    await opened.close()
    await drop_database(service_urls.database_url, name)


@pytest.fixture
def make_world(store: Store) -> MakeWorld:
    async def make(recipients: int = 0, *, running: bool = True) -> World:
        tag = uuid.uuid4().hex[:10]
        instance = await store.instances.upsert(f"pn-{tag}", f"biz-{tag}", f"token-{tag}")
        campaign = await store.campaigns.create(f"campaign {tag}", TEMPLATE, [instance.id])
        if recipients:
            await store.recipients.ingest(campaign.id, phones(recipients))
        if running:
            assert await store.campaigns.transition(campaign.id, CampaignStatus.RUNNING)
        fresh = await store.campaigns.get(campaign.id)
        assert fresh is not None
        return World(instance, fresh)

    return make


async def assert_counters_exact(store: Store, campaign_id: uuid.UUID) -> Campaign:
    """The campaign's counters equal what its recipient rows say, recounted from scratch."""
    row = await store.pool.fetchrow(
        """
        SELECT count(*) AS total_recipients,
               count(*) FILTER (WHERE sent_at IS NOT NULL) AS total_sent,
               count(*) FILTER (WHERE status IN ('delivered', 'read')) AS total_delivered,
               count(*) FILTER (WHERE status = 'read') AS total_read,
               count(*) FILTER (WHERE status = 'failed') AS total_failed,
               count(*) FILTER (WHERE status = 'duplicate') AS total_duplicates,
               count(*) FILTER (WHERE status = 'pending') AS pending,
               count(*) FILTER (WHERE status = 'queued') AS queued,
               count(*) FILTER (WHERE status = 'sending') AS sending
        FROM whatsapp_campaign_recipients WHERE campaign_id = $1
        """,
        campaign_id,
    )
    campaign = await store.campaigns.get(campaign_id)
    assert campaign is not None
    kept = {name: getattr(campaign, name) for name in row.keys()}  # noqa: SIM118
    assert kept == dict(row)
    return campaign
