"""End to end over real HTTP: a suppression list imported by CSV through the API, then a
campaign (created and sent through the API) that names those customers. The sandbox's
request log shows none of them was ever reached; their rows end ``suppressed`` and the
campaign counts them. A phone in no numbering plan in the same list is never sent either."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from dispatcher.sandbox.control import SandboxControl
from tests.actors.test_campaign import TEMPLATE
from tests.stack import API_TOKEN, Stack, wait_until

BUSINESS = "biz-large"
FRESH = [f"+55489{i:08d}" for i in range(20)]
STOPPED = [f"+55489{i:08d}" for i in range(100, 105)]
STOPPED_USER = "BR.stoppedlist1"
IMPOSSIBLE = "+5510987654321"  # Brazil has no area code 10


async def test_an_imported_list_is_never_sent_and_counted(stack: Stack) -> None:
    control = SandboxControl(stack.sandbox.url)
    await control.reset()
    async with httpx.AsyncClient(
        base_url=stack.api.url + "/api/whatsapp",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=60,
    ) as api:
        listed = "phone,reason\n" + "".join(f"{p},unsubscribed\n" for p in STOPPED)
        imported = await api.post(
            "/suppressions/import",
            params={"business_id": BUSINESS},
            content=(listed + f"{STOPPED_USER},wrote stop\n").encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert imported.status_code == 200, imported.text
        assert imported.json()["added"] == 6
        try:
            await _run(api, stack, control)
        finally:
            removed = await api.request(
                "DELETE",
                "/suppressions",
                json={"business_id": BUSINESS, "addresses": [*STOPPED, STOPPED_USER]},
            )
            assert removed.status_code == 200, removed.text


async def _run(api: httpx.AsyncClient, stack: Stack, control: SandboxControl) -> None:
    number = await api.post(
        "/instances",
        json={
            "phone_number_id": "6002",
            "access_token": stack.numbers["6002"],
            "business_id": BUSINESS,
            "throughput_mps": 200,
        },
    )
    assert number.status_code in (200, 201), number.text
    recipients: list[dict[str, Any]] = [{"phone": p} for p in FRESH[:10]]
    recipients += [{"phone": p} for p in STOPPED] + [{"user_id": STOPPED_USER}]
    recipients += [{"phone": IMPOSSIBLE}] + [{"phone": p} for p in FRESH[10:]]
    created = await api.post(
        "/campaigns",
        json={
            "name": f"supp-list-{uuid.uuid4().hex[:6]}",
            "instance_ids": [number.json()["id"]],
            "template": TEMPLATE,
            "recipients": recipients,
        },
    )
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    assert created.json()["total_invalid"] == 1
    sent = await api.post(f"/campaigns/{campaign_id}/send")
    assert sent.status_code == 200, sent.text

    async def completed() -> dict[str, Any] | None:
        campaign: dict[str, Any] = (await api.get(f"/campaigns/{campaign_id}")).json()
        return campaign if campaign["status"] == "completed" else None

    done = await wait_until(completed, timeout_s=60)
    assert done["total_recipients"] == 27
    assert done["total_sent"] == 20
    assert done["total_suppressed"] == 6
    assert done["total_invalid"] == 1
    assert done["total_failed"] == 0

    reached = {r["recipient"] for r in await control.requests(limit=10_000)}
    assert reached == set(FRESH)  # the sandbox never saw a suppressed or impossible number
    audit = await control.audit()
    assert (audit["accepted"], audit["duplicate_sends"]) == (20, 0)

    async def rows(status: str) -> set[str]:
        page = await api.get(f"/campaigns/{campaign_id}/recipients", params={"status": status})
        return {r["phone"] or r["user_id"] for r in page.json()["items"]}

    assert await rows("suppressed") == {*STOPPED, STOPPED_USER}
    assert await rows("invalid") == {IMPOSSIBLE}
