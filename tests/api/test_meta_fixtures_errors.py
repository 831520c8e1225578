"""Meta's documented payloads (tests/meta/fixtures/) posted signed to the live webhook, with
their effect on holds and suppressions asserted (DESIGN.md, "Error classes", "Webhook")."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from tests.api.conftest import create_campaign, phones, register, unique
from tests.api.conftest import meta_fixture as fixture
from tests.api.conftest import post_signed as post
from tests.stack import wait_until

PHONE_NUMBER_ID = "106540352242922"  # Meta's example number in every fixture
USER_PHONE = "+16505551234"
USER_BSUID = "US.13491208655302741918"


async def suppressed(api: httpx.AsyncClient, business: str) -> dict[str, str]:
    rows = (await api.get("/suppressions", params={"business_id": business})).json()
    return {r["address"]: r["source"] for r in rows["suppressions"]}


async def test_user_preferences_stop_suppresses_and_resume_lifts(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    business = unique("biz")
    await register(api, business_id=business, phone_number_id=PHONE_NUMBER_ID)
    stop = fixture("user_preferences_marketing_stop.json")
    await post(anonymous, stop)
    found = await wait_until(lambda: suppressed(api, business), timeout_s=30)
    assert found == {USER_PHONE: "user_preferences", USER_BSUID: "user_preferences"}

    resume = copy.deepcopy(stop)
    resume["entry"][0]["changes"][0]["value"]["user_preferences"][0]["value"] = "resume"
    await post(anonymous, resume)

    async def lifted() -> bool:
        return await suppressed(api, business) == {}

    await wait_until(lifted, timeout_s=30)


async def test_status_failed_131050_suppresses_the_user(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    business = unique("biz")
    await register(api, business_id=business, phone_number_id=PHONE_NUMBER_ID)
    await post(anonymous, fixture("status_failed_131050.json"))
    found = await wait_until(lambda: suppressed(api, business), timeout_s=30)
    assert found == {USER_PHONE: "131050"}


async def test_template_status_updates_hold_and_release_its_campaigns(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    instance = await register(api)
    promo = {"name": "campaign_promo", "language": "pt_BR", "components": []}
    held = await create_campaign(api, [instance["id"]], phones(3), template=promo)
    other_language = await create_campaign(
        api, [instance["id"]], phones(3), template={**promo, "language": "en_US"}
    )
    for campaign in (held, other_language):
        assert (await api.post(f"/campaigns/{campaign['id']}/send")).status_code == 200

    async def status(campaign: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = (await api.get(f"/campaigns/{campaign['id']}")).json()
        return body

    async def is_(campaign: dict[str, Any], wanted: str) -> dict[str, Any] | None:
        body = await status(campaign)
        return body if body["status"] == wanted else None

    try:
        await post(anonymous, fixture("message_template_status_update_paused.json"))
        body = await wait_until(lambda: is_(held, "held"), timeout_s=30)
        assert body["hold_kind"] == "template"
        assert "campaign_promo" in body["status_reason"]
        assert "PAUSED" in body["status_reason"]
        assert body["total_failed"] == 0
        assert (await status(other_language))["status"] == "running"

        # APPROVED for another template (order_confirmation) releases nothing of ours...
        await post(anonymous, fixture("message_template_status_update_approved.json"))
        approved = fixture("message_template_status_update_approved.json")
        value = approved["entry"][0]["changes"][0]["value"]
        value.update(message_template_name="campaign_promo", message_template_language="pt_BR")
        order = await create_campaign(
            api, [instance["id"]], phones(2), template={**promo, "name": "order_confirmation"}
        )
        assert (await api.post(f"/campaigns/{order['id']}/send")).status_code == 200
        # ...and APPROVED for campaign_promo releases it.
        await post(anonymous, approved)
        await wait_until(lambda: is_(held, "running"), timeout_s=30)
        assert (await status(order))["status"] == "running"
        await api.post(f"/campaigns/{order['id']}/cancel")

        await post(anonymous, fixture("message_template_status_update_disabled.json"))
        await wait_until(lambda: is_(held, "held"), timeout_s=30)
        # The operator may release it too.
        resumed = await api.post(f"/campaigns/{held['id']}/resume")
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["status"] == "running"
    finally:
        for campaign in (held, other_language):
            await api.post(f"/campaigns/{campaign['id']}/cancel")
