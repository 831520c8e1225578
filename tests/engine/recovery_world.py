"""A coordinator core in-process over real Postgres and Redis, with the fake fleet of actors.

Each test gets a database of its own: a coordinator drives every campaign of its database
and a queue rebuild moves every campaign's rows, so neither may reach other tests' campaigns
(or those the session's live coordinator drives).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
import redis.asyncio as aioredis

from dispatcher.engine.batch import Batch
from dispatcher.engine.config import EngineConfig
from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.meta.tiers import MessagingTier
from dispatcher.queue.streams import Job, WorkQueue
from dispatcher.services import ServiceUrls
from dispatcher.store import Store
from dispatcher.store.models import Campaign, Instance, NewRecipient, SendOutcome, SendResult
from tests.engine.fakes import FakeClock, FakeFleet, own_database

TEMPLATE = {"name": "promo", "language": {"code": "pt_BR"}, "components": []}


@dataclass
class World:
    store: Store
    queue: WorkQueue
    fleet: FakeFleet
    clock: FakeClock
    config: EngineConfig
    core: CoordinatorCore

    def restart(self) -> CoordinatorCore:
        """A new coordinator over the same stores (the old one's memory is gone)."""
        self.core = CoordinatorCore(self.store, self.queue, self.fleet, self.config, self.clock)
        return self.core

    async def number(
        self, business_id: str | None = None, tier: MessagingTier | None = None
    ) -> Instance:
        tag = uuid.uuid4().hex[:10]
        business = business_id or f"biz-{tag}"
        instance = await self.store.instances.upsert(f"pn-{tag}", business, f"token-{tag}")
        if tier is not None:
            await self.store.portfolios.set_override(business, tier)
        return instance

    async def campaign(self, instances: list[Instance], size: int, **kw: Any) -> Campaign:
        campaign = await self.store.campaigns.create(
            f"c-{uuid.uuid4().hex[:6]}", TEMPLATE, [i.id for i in instances], **kw
        )
        start = int(uuid.uuid4().int % 10**5) * 1_000
        await self.store.recipients.ingest(
            campaign.id, (NewRecipient(phone=f"+55119{start + i:08d}") for i in range(size))
        )
        return campaign

    async def get(self, campaign_id: UUID) -> Campaign:
        campaign = await self.store.campaigns.get(campaign_id)
        assert campaign is not None
        return campaign

    async def take(self, instance: Instance, consumer: str = "worker") -> list[Job]:
        """Read every waiting batch of the number as a worker would."""
        jobs: list[Job] = []
        while got := await self.queue.read(instance.id, consumer, count=50):
            jobs.extend(got)
        return jobs

    async def start(self, instance: Instance, job: Job) -> list[int]:
        """What a worker does first with a batch: mark its rows sending (only those still
        in the batch's claim); the ids it may send."""
        batch = Batch.from_json(job.batch)
        ids = [item.recipient_id for item in batch.items]
        return await self.store.recipients.mark_sending(batch.claim_id, ids, instance.id)

    async def settle(
        self, instance: Instance, ids: list[int], outcome: SendOutcome, **kw: Any
    ) -> None:
        now = datetime.now(UTC)
        await self.store.outcomes.apply_results(
            [
                SendResult(
                    i,
                    outcome,
                    now,
                    instance.id,
                    wamid=f"wamid.{i}" if outcome is SendOutcome.SENT else None,
                    **kw,
                )
                for i in ids
            ]
        )


@pytest.fixture
async def own_store(service_urls: ServiceUrls) -> AsyncIterator[Store]:
    async with own_database(service_urls.database_url, "dispatcher_recovery") as (_, store):
        yield store


def world_over(store: Store, client: aioredis.Redis, prefix: str, **config: Any) -> World:
    clock = FakeClock()
    engine = EngineConfig(**config)
    queue = WorkQueue(client, prefix=prefix)
    fleet = FakeFleet()
    core = CoordinatorCore(store, queue, fleet, engine, clock)
    return World(store, queue, fleet, clock, engine, core)
