"""Another app sends from the same number: its statuses (Meta sends them to every app on the
WABA) carry bare numeric callback data equal to our recipient ids, and move none of ours."""

from __future__ import annotations

import uuid

from dispatcher import operations
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from dispatcher.store.models import Campaign, NewRecipient
from tests.actors.test_campaign import TEMPLATE, finished, register_all
from tests.actors.test_faults import assert_exactly_once
from tests.stack import Stack, wait_until

SIZE = 600


async def _webhooks_settled(stack: Stack, control: SandboxControl, posted: int) -> bool | None:
    """True once the sandbox posted at least ``posted`` statuses and the API's webhook
    stream has applied everything it was given."""
    if (await control.audit())["webhook_statuses"] < posted:
        return None
    store, queues = await stack.deployment.open(pool_size=1)
    try:
        stats = await queues.webhooks.stats()
    finally:
        await store.close()
        await queues.client.aclose()
    return True if stats.pending == 0 and stats.processing == 0 else None


async def _campaign(store: Store, campaign_id: uuid.UUID) -> Campaign:
    campaign = await store.campaigns.get(campaign_id)
    assert campaign is not None
    return campaign


async def test_another_senders_statuses_before_and_during_a_campaign_leave_ours_untouched(
    stack: Stack, store: Store
) -> None:
    control = SandboxControl(stack.sandbox.url)
    await control.reset()
    ids = await register_all(store, stack, ["6001"])
    campaign = await operations.create_campaign(
        store,
        name=f"other-sender-{uuid.uuid4().hex[:6]}",
        template=TEMPLATE,
        instance_ids=ids,
        recipients=(NewRecipient(phone=f"+55219{i:08d}") for i in range(SIZE)),
    )
    rows = await store.recipients.page(campaign.id, limit=SIZE)
    ours = [str(r.id) for r in rows]
    assert len(ours) == SIZE

    # Before: the other app's messages "to" our ids: half fail, half are sent / delivered.
    await control.other_sender("6001", ours[: SIZE // 2], fail_code=131026)
    await control.other_sender("6001", ours[SIZE // 2 :])
    await wait_until(lambda: _webhooks_settled(stack, control, 2 * SIZE), timeout_s=60)
    before = await _campaign(store, campaign.id)
    assert (before.total_sent, before.total_failed, before.total_delivered) == (0, 0, 0)
    assert before.pending == SIZE

    # During: the campaign runs while the other app's failures keep coming.
    assert await stack.coordinator.start_campaign.remote(str(campaign.id))
    await control.other_sender("6001", ours, fail_code=131026)

    await wait_until(lambda: finished(store, campaign.id), timeout_s=120)
    await control.other_sender("6001", ours, fail_code=131026)

    async def all_delivered() -> Campaign | None:
        fresh = await _campaign(store, campaign.id)
        return fresh if fresh.total_delivered == SIZE else None

    await wait_until(all_delivered, timeout_s=60)
    # Ours: SIZE x (sent, delivered, read for about half); theirs: 4 x SIZE statuses.
    await wait_until(lambda: _webhooks_settled(stack, control, 2 * SIZE + 4 * SIZE), timeout_s=60)
    done = await _campaign(store, campaign.id)
    assert (done.total_sent, done.total_failed, done.total_delivered) == (SIZE, 0, SIZE)
    await assert_exactly_once(store, control, done)
    await control.aclose()
