"""The engine's tests: a database of their own, a Redis prefix per test, the sandbox over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
import redis.asyncio as aioredis

from dispatcher.meta.callback_tag import CallbackTag
from dispatcher.queue.streams import WorkQueue
from dispatcher.queue.webhooks import WebhookQueue
from dispatcher.services import ServiceUrls
from dispatcher.store import Store
from dispatcher.store.models import Campaign, Instance, NewRecipient
from tests.engine.fakes import own_database

# The sandbox over real HTTP, as the Meta client's tests run it.
from tests.meta.conftest import client, received, sandbox, sandbox_process  # noqa: F401

TEMPLATE = {"name": "hello_world", "language": {"code": "en_US"}, "components": []}


@pytest.fixture(scope="session")
async def engine_database(service_urls: ServiceUrls) -> AsyncIterator[tuple[str, Store]]:
    async with own_database(service_urls.database_url, "dispatcher_engine") as opened:
        yield opened


@pytest.fixture(scope="session")
def store(engine_database: tuple[str, Store]) -> Store:
    return engine_database[1]


@pytest.fixture(scope="session")
def engine_url(engine_database: tuple[str, Store]) -> str:
    return engine_database[0]


@pytest.fixture
def work_queue(redis_client: aioredis.Redis, redis_prefix: str) -> WorkQueue:
    return WorkQueue(redis_client, prefix=redis_prefix)


@pytest.fixture
def webhook_queue(redis_client: aioredis.Redis, redis_prefix: str) -> WebhookQueue:
    return WebhookQueue(redis_client, prefix=redis_prefix)


MakeInstance = Callable[..., Awaitable[Instance]]
MakeCampaign = Callable[..., Awaitable[Campaign]]


@pytest.fixture
async def tag(store: Store) -> CallbackTag:
    """The database's callback tag (what instance workers put in biz_opaque_callback_data)."""
    return await store.secrets.callback_tag()


@pytest.fixture
def make_instance(store: Store) -> MakeInstance:
    async def make(
        business_id: str | None = None,
        *,
        phone_number_id: str | None = None,
        token: str | None = None,
        throughput_mps: int = 80,
    ) -> Instance:
        tag = uuid.uuid4().hex[:10]
        return await store.instances.upsert(
            phone_number_id or f"pn-{tag}",
            business_id or f"biz-{tag}",
            token or f"token-{tag}",
            throughput_mps=throughput_mps,
        )

    return make


def phones(n: int, start: int = 0) -> list[NewRecipient]:
    return [NewRecipient(phone=f"+55119{start + i:08d}") for i in range(n)]


@pytest.fixture
def make_campaign(store: Store) -> MakeCampaign:
    async def make(instances: Sequence[Instance], recipients: int, start: int = 0) -> Campaign:
        campaign = await store.campaigns.create(
            f"engine {uuid.uuid4().hex[:8]}", TEMPLATE, [i.id for i in instances]
        )
        await store.recipients.ingest(campaign.id, phones(recipients, start))
        return campaign

    return make
