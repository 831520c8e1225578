"""End to end over real HTTP with real actors: a send window holds a running campaign's
recipients until it opens; an expiry ends what was not sent.

The dispatcher's windows run on the real clock (a product never takes time from Meta); the
sandbox stamps each request with its own wall clock (``/_sandbox/requests`` ``wall``: the
machine's, plus any offset a test gave it, none here), and the test compares those stamps
with the window's opening. Windows have second resolution, so the test opens one a few
seconds ahead instead of waiting for a minute boundary.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from tests.actors.test_campaign import TEMPLATE, register_all
from tests.stack import API_TOKEN, Stack, wait_until

OPENS_IN_S = 8.0
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def api(stack: Stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{stack.api.url}/api/whatsapp",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=30.0,
    )


async def create(client: httpx.AsyncClient, instance_id: str, base: int, **extra: Any) -> Any:
    body = {
        "name": f"window-{base}",
        "instance_ids": [instance_id],
        "template": {"name": TEMPLATE["name"], "language": TEMPLATE["language"]},
        "recipients": [{"phone": f"+569{base}{i:06d}"} for i in range(20)],
        **extra,
    }
    response = await client.post("/campaigns", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def arrivals(control: SandboxControl, phones: set[str]) -> list[float]:
    """Wall-clock times (sandbox) of the requests that reached it for these phones."""
    return [
        r["wall"]
        for r in await control.requests(limit=100_000)
        if r["recipient"] in phones and r["status"] == 200
    ]


async def test_a_window_holds_recipients_until_it_opens(stack: Stack, store: Store) -> None:
    control = SandboxControl(stack.sandbox.url)
    await control.reset()
    [instance_id] = await register_all(store, stack, ["6001"])
    opens = (datetime.now(UTC) + timedelta(seconds=OPENS_IN_S)).replace(microsecond=0)
    window = {
        "days": EVERY_DAY,
        "start": opens.time().isoformat(),
        "end": (opens + timedelta(hours=1)).time().isoformat(),  # may cross midnight
        "timezone": "UTC",
    }
    async with api(stack) as client:
        campaign = await create(client, str(instance_id), 31, send_window=window)
        phones = {f"+56931{i:06d}" for i in range(20)}
        sent = await client.post(f"/campaigns/{campaign['id']}/send")
        assert sent.json()["status"] == "running"

        shown = (await client.get(f"/campaigns/{campaign['id']}")).json()
        assert shown["status"] == "running"
        assert shown["waiting"] == 20
        assert datetime.fromisoformat(shown["next_window_at"]) == opens

        # Until a second before it opens: nothing reached the sandbox, it stays running.
        await asyncio.sleep(max(0.0, (opens - datetime.now(UTC)).total_seconds() - 1.0))
        shown = (await client.get(f"/campaigns/{campaign['id']}")).json()
        assert (shown["status"], shown["waiting"], shown["total_sent"]) == ("running", 20, 0)
        assert await arrivals(control, phones) == []

        async def completed() -> Any:
            found = (await client.get(f"/campaigns/{campaign['id']}")).json()
            return found if found["status"] == "completed" else None

        done = await wait_until(completed, timeout_s=60)
    assert done["total_sent"] == 20
    assert (done["waiting"], done["next_window_at"]) == (0, None)
    times = await arrivals(control, phones)
    assert len(times) == 20
    assert min(times) >= opens.timestamp()
    audit = await control.audit()
    assert audit["duplicate_sends"] == 0
    await control.aclose()


async def test_past_expires_at_nothing_more_is_sent_and_the_campaign_completes(
    stack: Stack, store: Store
) -> None:
    """A campaign capped at 60 a minute cannot send its 20 recipients in the 5 s before it
    expires: those sent went out before, the rest end expired, and it completes."""
    control = SandboxControl(stack.sandbox.url)
    await control.reset()
    [instance_id] = await register_all(store, stack, ["6001"])
    expires = datetime.now(UTC) + timedelta(seconds=5)
    async with api(stack) as client:
        campaign = await create(
            client, str(instance_id), 32, max_per_minute=60, expires_at=expires.isoformat()
        )
        assert (await client.post(f"/campaigns/{campaign['id']}/send")).status_code == 200

        async def completed() -> Any:
            found = (await client.get(f"/campaigns/{campaign['id']}")).json()
            return found if found["status"] == "completed" else None

        done = await wait_until(completed, timeout_s=60)
        expired = (
            await client.get(
                f"/campaigns/{campaign['id']}/recipients", params={"status": "expired"}
            )
        ).json()["items"]
    assert datetime.fromisoformat(done["finished_at"]) >= expires
    assert done["total_sent"] + done["total_expired"] == 20
    assert 0 < done["total_sent"] <= 5 + 2  # 1/s for 5 s, plus one burst of the cap
    assert done["pending"] == 0
    assert len(expired) == done["total_expired"]
    assert all("expires_at" in r["error_message"] for r in expired)
    times = await arrivals(control, {f"+56932{i:06d}" for i in range(20)})
    assert len(times) == done["total_sent"]
    # What a sender held at the expiry is dropped within stopped_check_s (0.5 s).
    assert max(times) <= expires.timestamp() + 1.0
    await control.aclose()
