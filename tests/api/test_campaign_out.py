"""A campaign as the API answers it, from its stored row (no HTTP: the real store, the real
model)."""

from __future__ import annotations

import uuid

from api.campaigns import campaign_out
from dispatcher.retry_policy import DEFAULT_POLICY, RetryPolicy
from dispatcher.store import Store

TEMPLATE = {"name": "promo", "language": {"code": "en_US"}, "components": []}


async def test_a_stored_retry_policy_that_no_longer_validates_is_shown_as_stored(
    store: Store,
) -> None:
    """Validated at creation; a rule tightened by a later release must not turn every read
    of the campaign (GET, the list, the console) into a 500."""
    tag = uuid.uuid4().hex[:10]
    instance = await store.instances.upsert(f"pn-{tag}", f"biz-{tag}", f"token-{tag}")
    created = await store.campaigns.create(f"policy {tag}", TEMPLATE, [instance.id])
    assert campaign_out(created).retry_policy == DEFAULT_POLICY

    stale = {"rules": [{"codes": [131026], "after_s": 60}]}  # 131026: never retried now
    await store.pool.execute(
        "UPDATE whatsapp_campaigns SET retry_policy = $2 WHERE id = $1", created.id, stale
    )
    campaign = await store.campaigns.get(created.id)
    assert campaign is not None
    out = campaign_out(campaign)
    assert out.retry_policy == stale
    assert out.model_dump(mode="json")["retry_policy"] == stale

    valid = {"rules": [{"codes": [131049], "after_s": 60, "max_rounds": 2}]}
    await store.pool.execute(
        "UPDATE whatsapp_campaigns SET retry_policy = $2 WHERE id = $1", created.id, valid
    )
    campaign = await store.campaigns.get(created.id)
    assert campaign is not None
    assert campaign_out(campaign).retry_policy == RetryPolicy.model_validate(valid)
