"""Instance actors come and go with the work, on real local Ray against the sandbox.

A stack of its own (its own database, so its coordinator holds that database's lease) with a
short idle period: five registered numbers cost no process; a campaign on one starts exactly
its actor, which stops once idle; new work starts a new one; Meta sees every message once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
import ray

from dispatcher import operations
from dispatcher.config import Settings
from dispatcher.sandbox.config import NumberConfig
from dispatcher.sandbox.control import SandboxControl
from dispatcher.services import ServiceUrls
from dispatcher.store import Store
from dispatcher.store.db import create_database, drop_database
from dispatcher.store.models import Campaign, CampaignStatus, NewRecipient
from tests.stack import Stack, start_stack, stop_stack, wait_until
from tests.stack import test_engine_config as stack_engine_config

NUMBERS = [f"73{i:02d}" for i in range(1, 6)]
"""Names no other test's actors use (actor names are per number, Ray-wide in this check)."""
TEMPLATE = {"name": "hello_world", "language": "en_US", "components": []}
IDLE_S = 3.0


@pytest.fixture(scope="module")
def lazy_stack(settings: Settings, service_urls: ServiceUrls) -> Iterator[Stack]:
    name = f"dispatcher_lazy_{uuid.uuid4().hex[:12]}"
    url = asyncio.run(create_database(service_urls.database_url, name))
    engine = replace(stack_engine_config(), instance_idle_stop_s=IDLE_S, idle_check_interval_s=0.5)
    stack = start_stack(settings, url, service_urls.redis_url, engine)
    try:
        yield stack
    finally:
        stop_stack(stack)
        asyncio.run(drop_database(service_urls.database_url, name))


def alive_actors() -> list[str]:
    """Our numbers' instance actors alive now, from Ray's GCS. (``ray.util.state`` asks the
    dashboard, which this Ray runs without, and cannot pick it among the machine's others.)"""
    names = {f"instance-{number}" for number in NUMBERS}
    return sorted(
        actor["Name"]
        for actor in ray._private.state.actors().values()  # type: ignore[attr-defined]
        if actor["State"] == "ALIVE" and actor["Name"] in names
    )


async def completed(store: Store, campaign_id: uuid.UUID) -> Campaign | None:
    campaign = await store.campaigns.get(campaign_id)
    assert campaign is not None
    return campaign if campaign.status is CampaignStatus.COMPLETED else None


async def send(stack: Stack, store: Store, instance_id: uuid.UUID, start: int) -> Campaign:
    campaign = await operations.create_campaign(
        store,
        name=f"lazy-{uuid.uuid4().hex[:6]}",
        template=TEMPLATE,
        instance_ids=[instance_id],
        recipients=(NewRecipient(phone=f"+55739{start + i:08d}") for i in range(200)),
    )
    assert await stack.coordinator.start_campaign.remote(str(campaign.id))
    done = await wait_until(lambda: completed(store, campaign.id), timeout_s=120)
    assert (done.total_sent, done.total_failed) == (200, 0)
    return done


async def gone(number: str) -> bool:
    return f"instance-{number}" not in alive_actors()


async def test_only_numbers_with_work_have_an_actor_and_an_idle_one_stops(
    lazy_stack: Stack,
) -> None:
    stack = lazy_stack
    control = SandboxControl(stack.sandbox.url)
    store = await Store.open(stack.deployment.database_url, max_size=2)
    try:
        await control.reset()
        ids = []
        for number in NUMBERS:
            token = f"tok-{number}"
            await control.add_number(
                NumberConfig(phone_number_id=number, token=token, business_id="biz-large")
            )
            instance = await operations.register_instance(
                store, phone_number_id=number, access_token=token, business_id="biz-large"
            )
            await stack.coordinator.refresh_instance.remote(str(instance.id))
            ids.append(instance.id)
        assert alive_actors() == []
        # Registration read each number's facts without an actor.
        registered = await store.instances.get(ids[0])
        assert registered is not None
        assert registered.throughput_mps == 80
        stats = await stack.coordinator.instance_stats.remote(str(ids[1]))
        assert (stats["state"], stats["phone_number_id"]) == ("stopped", NUMBERS[1])

        await send(stack, store, ids[0], 0)
        assert alive_actors() == [f"instance-{NUMBERS[0]}"]
        await wait_until(lambda: gone(NUMBERS[0]), timeout_s=60)
        stats = await stack.coordinator.instance_stats.remote(str(ids[0]))
        assert (stats["state"], stats["sent"]) == ("stopped", 200)  # its last figures stay

        await send(stack, store, ids[0], 1000)  # a new incarnation sends the next campaign
        assert alive_actors() == [f"instance-{NUMBERS[0]}"]
        audit = await control.audit()
        assert (audit["accepted"], audit["duplicate_sends"]) == (400, 0)
        totals = await stack.coordinator.stats.remote()
        assert totals["actors"]["stopped_idle"] >= 1
    finally:
        await control.aclose()
        await store.close()
