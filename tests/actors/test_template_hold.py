"""End to end: Meta pauses the campaign's template mid-campaign (132015 and the
``message_template_status_update`` webhook): the campaign is held, nobody failed; the
APPROVED webhook releases it, and it completes with every message sent once."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from dispatcher import operations
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from dispatcher.store.models import Campaign, CampaignStatus, NewRecipient
from tests.actors.test_campaign import finished, register_all
from tests.stack import Stack, wait_until

PROMO = {"name": "campaign_promo", "language": "pt_BR", "components": []}
SIZE = 3_000


async def template_event(stack: Stack, event: str) -> None:
    async with httpx.AsyncClient(base_url=stack.sandbox.url, timeout=30) as client:
        response = await client.post(
            "/_sandbox/templates/status", json={"name": PROMO["name"], "event": event}
        )
        assert response.status_code == 200, response.text


async def test_a_template_paused_mid_campaign_holds_it_until_approved(
    stack: Stack, store: Store
) -> None:
    control = SandboxControl(stack.sandbox.url)
    await control.reset()
    ids = await register_all(store, stack, ["6002"])
    campaign = await operations.create_campaign(
        store,
        name=f"hold-{uuid.uuid4().hex[:6]}",
        template=PROMO,
        instance_ids=ids,
        recipients=(NewRecipient(phone=f"+55489{i:08d}") for i in range(SIZE)),
    )
    assert await stack.coordinator.start_campaign.remote(str(campaign.id))

    async def sent_some() -> Campaign | None:
        current = await store.campaigns.get(campaign.id)
        return current if current is not None and current.total_sent >= 300 else None

    await wait_until(sent_some, timeout_s=60, every_s=0.05)
    await template_event(stack, "PAUSED")

    async def held() -> Campaign | None:
        current = await store.campaigns.get(campaign.id)
        return current if current is not None and current.status is CampaignStatus.HELD else None

    on_hold = await wait_until(held, timeout_s=30)
    assert on_hold.hold_kind == "template"
    await asyncio.sleep(3)  # whatever was in flight settles; nothing more goes out
    still = await store.campaigns.get(campaign.id)
    assert still is not None
    assert still.status is CampaignStatus.HELD
    assert still.total_failed == 0
    assert still.pending > 0
    assert still.total_sent < SIZE
    await asyncio.sleep(2)
    later = await store.campaigns.get(campaign.id)
    assert later is not None
    assert later.total_sent == still.total_sent  # held: nothing routed

    await template_event(stack, "APPROVED")
    done = await wait_until(lambda: finished(store, campaign.id), timeout_s=120)
    assert done.total_sent == SIZE
    assert done.total_failed == 0
    audit = await control.audit()
    assert audit["accepted"] == SIZE
    assert audit["duplicate_sends"] == 0
