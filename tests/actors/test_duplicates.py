"""End to end: a list that names customers twice sends each of them once and completes."""

from __future__ import annotations

import uuid

from dispatcher import operations
from dispatcher.meta.tiers import MessagingTier
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from dispatcher.store.models import NewRecipient, RecipientStatus
from tests.actors.test_campaign import TEMPLATE, finished
from tests.stack import Stack, wait_until


async def test_a_list_exported_twice_reaches_each_customer_once_and_completes(
    stack: Stack, store: Store
) -> None:
    control = SandboxControl(stack.sandbox.url)
    await control.reset()
    # A portfolio of its own with a limit of 250 unique recipients a day: exactly the list's
    # unique customers. Were duplicates to take slots, the rest would wait for the window
    # to move and the campaign would not complete.
    business_id = f"biz-dups-{uuid.uuid4().hex[:8]}"
    instance = await operations.register_instance(
        store,
        phone_number_id="6002",
        access_token=stack.numbers["6002"],
        business_id=business_id,
        throughput_mps=200,
    )
    await store.portfolios.set_override(business_id, MessagingTier.TIER_250)
    await stack.coordinator.refresh_instance.remote(str(instance.id))

    customers = [NewRecipient(phone=f"+55319{i:08d}") for i in range(200)]
    customers += [NewRecipient(user_id=f"BR.dups{i:06d}") for i in range(50)]
    exported_twice = [*customers, *customers]
    campaign = await operations.create_campaign(
        store,
        name=f"dups-{uuid.uuid4().hex[:6]}",
        template=TEMPLATE,
        instance_ids=[instance.id],
        recipients=iter(exported_twice),
    )
    assert (campaign.total_recipients, campaign.total_duplicates, campaign.pending) == (
        500,
        250,
        250,
    )
    assert await stack.coordinator.start_campaign.remote(str(campaign.id))
    # And the first hundred again while it sends.
    again = await store.recipients.ingest(campaign.id, customers[:100])
    assert (again.rows, again.duplicates) == (100, 100)

    done = await wait_until(lambda: finished(store, campaign.id), timeout_s=120)
    assert (done.total_sent, done.total_failed, done.total_duplicates) == (250, 0, 350)
    assert (done.pending, done.queued, done.sending) == (0, 0, 0)
    counts = await store.recipients.count_by_status(campaign.id)
    assert sum(counts.values()) == done.total_recipients == 600
    assert counts[RecipientStatus.DUPLICATE] == 350

    audit = await control.audit()
    assert audit["accepted"] == 250
    assert audit["duplicate_sends"] == 0
    assert audit["pair_violations"] == 0
    assert audit["numbers"]["6002"]["accepted"] == 250
    await control.aclose()
