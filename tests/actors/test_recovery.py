"""Recovery end to end on real local Ray, Postgres, the sandbox and an embedded valkey of the
module's own (flushing a server is never done to the machine's Redis): Redis losing its data
mid-campaign, and a cancel with batches already routed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dispatcher.config import Settings
from dispatcher.queue.connection import connect_redis
from dispatcher.sandbox.control import SandboxControl
from dispatcher.services import EmbeddedRedis, ServiceUrls
from dispatcher.store import Store
from dispatcher.store.db import create_database, drop_database
from dispatcher.store.models import Campaign, CampaignStatus
from tests.actors.test_campaign import finished, register_all, run_campaign
from tests.actors.test_faults import assert_exactly_once, sent_at_least
from tests.stack import Stack, start_stack, stop_stack, wait_until


@pytest.fixture(scope="module")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("recovery")) / "valkey")
    server.ensure_running()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def own_database(service_urls: ServiceUrls) -> AsyncIterator[str]:
    name = f"dispatcher_recovery_{uuid.uuid4().hex[:12]}"
    url = await create_database(service_urls.database_url, name)
    yield url
    await drop_database(service_urls.database_url, name)


@pytest.fixture(scope="module")
async def own_store(own_database: str) -> AsyncIterator[Store]:
    opened = await Store.open(own_database, max_size=4)
    yield opened
    await opened.close()


@pytest.fixture(scope="module")
def own_stack(
    settings: Settings, own_database: str, own_store: Store, valkey: EmbeddedRedis
) -> Iterator[Stack]:
    url = valkey.url()
    assert url is not None
    running = start_stack(settings, own_database, url)
    yield running
    stop_stack(running)


async def test_redis_flushed_mid_campaign_is_rebuilt_and_everyone_is_sent_once(
    own_stack: Stack, own_store: Store, valkey: EmbeddedRedis
) -> None:
    control = SandboxControl(own_stack.sandbox.url)
    await control.reset()
    ids = await register_all(own_store, own_stack, ["6002"])  # 200 msg/s: 3,000 take ~15 s
    campaign = await run_campaign(own_store, own_stack, ids, 3_000, 31)
    await wait_until(lambda: sent_at_least(own_store, campaign.id, 500), timeout_s=60)
    url = valkey.url()
    assert url is not None
    client = await connect_redis(url)
    await client.flushall()  # every batch, group, webhook and marker: gone
    flushed_at = time.monotonic()
    await client.aclose()

    prefix = own_stack.deployment.queue_prefix
    await wait_until(lambda: _rebuilt(own_store, prefix), timeout_s=30)
    rebuilt_s = time.monotonic() - flushed_at
    done = await wait_until(lambda: finished(own_store, campaign.id), timeout_s=120)
    completed_s = time.monotonic() - flushed_at
    await assert_exactly_once(own_store, control, done)
    print(f"flush -> rebuilt {rebuilt_s:.1f}s, -> completed {completed_s:.1f}s")
    assert rebuilt_s < 60
    assert completed_s < 60 + 15  # rebuilt within a minute, then the rest sent
    await control.aclose()


async def _rebuilt(store: Store, prefix: str) -> bool:
    return await store.recovery.losses(prefix) == 1


async def test_cancel_with_batches_already_routed_sends_nothing_more(
    own_stack: Stack, own_store: Store
) -> None:
    control = SandboxControl(own_stack.sandbox.url)
    await control.reset()
    ids = await register_all(own_store, own_stack, ["6002"])
    campaign = await run_campaign(own_store, own_stack, ids, 3_000, 32)
    await wait_until(lambda: sent_at_least(own_store, campaign.id, 300), timeout_s=60)
    assert await own_stack.coordinator.cancel_campaign.remote(str(campaign.id))
    # Sends already on the wire at the cancel may land; the actor drops the rest within
    # stopped_check_s. Before, its two routed batches (~4 s of sends) still went out.
    await asyncio.sleep(1.5)
    settled = (await control.audit())["accepted"]
    await asyncio.sleep(3.0)
    assert (await control.audit())["accepted"] == settled

    async def quiet() -> Campaign | None:
        found = await own_store.campaigns.get(campaign.id)
        assert found is not None
        return found if found.queued == found.sending == 0 else None

    stopped = await wait_until(quiet, timeout_s=30)
    assert stopped.status is CampaignStatus.CANCELLED
    assert stopped.total_sent == settled < 3_000
    assert stopped.pending == 3_000 - settled  # never sent, and nobody else will
    audit = await control.audit()
    assert audit["duplicate_sends"] == 0
    await control.aclose()
