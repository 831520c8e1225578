"""End to end: Meta fails a message with 131050 by webhook (the user stopped marketing); the
user is suppressed for the business, and a later campaign skips them (not sent, counted)."""

from __future__ import annotations

import uuid

from dispatcher import operations
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from dispatcher.store.models import Campaign, NewRecipient, RecipientStatus
from tests.actors.test_campaign import TEMPLATE, finished, register_all
from tests.stack import Stack, sandbox_config, wait_until

STOPPED = "+573000000007"


async def campaign_of(store: Store, stack: Stack, ids: list[uuid.UUID], base: int) -> Campaign:
    campaign = await operations.create_campaign(
        store,
        name=f"supp-{uuid.uuid4().hex[:6]}",
        template=TEMPLATE,
        instance_ids=ids,
        recipients=[
            NewRecipient(phone=STOPPED),
            *(NewRecipient(phone=f"+573{base}{i:08d}") for i in range(20)),
        ],
    )
    assert await stack.coordinator.start_campaign.remote(str(campaign.id))
    return campaign


async def test_131050_suppresses_the_user_and_later_campaigns_skip_them(
    stack: Stack, store: Store
) -> None:
    config = sandbox_config(str(stack.sandbox.config.webhook.url))
    for number in config.numbers:
        if number.phone_number_id == "6002":
            number.failing = {STOPPED: 131050}
    control = SandboxControl(stack.sandbox.url)
    await control.reset(config)
    try:
        ids = await register_all(store, stack, ["6002"])
        first = await campaign_of(store, stack, ids, 1)
        await wait_until(lambda: finished(store, first.id), timeout_s=60)

        async def suppressed() -> list[str]:
            rows = await store.suppressions.page("biz-large", address=STOPPED)
            return [r.source for r in rows]

        assert await wait_until(suppressed, timeout_s=30) == ["131050"]
        failed = await store.recipients.page(first.id, status=RecipientStatus.FAILED)
        assert [(r.phone, r.error_code) for r in failed] == [(STOPPED, 131050)]

        accepted_before = (await control.audit())["accepted"]
        second = await campaign_of(store, stack, ids, 2)
        done = await wait_until(lambda: finished(store, second.id), timeout_s=60)
        assert done.total_suppressed == 1
        assert done.total_sent == 20
        assert done.total_failed == 0
        skipped = await store.recipients.page(second.id, status=RecipientStatus.SUPPRESSED)
        assert [r.phone for r in skipped] == [STOPPED]
        assert skipped[0].error_message is not None
        assert skipped[0].error_message.startswith("suppressed for marketing")
        assert (await control.audit())["accepted"] == accepted_before + 20
    finally:
        await store.suppressions.remove("biz-large", [STOPPED])
        await control.reset()
