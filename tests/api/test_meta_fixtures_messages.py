"""Meta's documented ``messages`` payloads (tests/meta/fixtures/), signed, to the live webhook.

Their ``biz_opaque_callback_data`` is another sender's bare number: recipient rows whose ids
equal those numbers must not move. A status whose wamid is one we sent moves our row.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import orjson

from dispatcher.meta.callback_tag import CallbackTag
from dispatcher.store import Store
from tests.api.conftest import PREFIX, create_campaign, phones, register, signed
from tests.stack import wait_until

FIXTURES = Path(__file__).parents[1] / "meta" / "fixtures"
NAMES = re.compile(r"^(status_.*|batched_.*|inbound_.*|value_level_errors_130429)\.json$")
WAMID_DELIVERED = "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"
WAMID_READ = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBIyQjhEMTk3QTc1NUQ4RkU3RjIA"
WAMID_FAILED_131050 = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3RjFDMEE5QjQyMTBENTc5NjEA"
NUMBER = "106540352242922"


def _fixtures() -> list[Path]:
    found = sorted(p for p in FIXTURES.iterdir() if NAMES.match(p.name))
    assert len(found) == 14, [p.name for p in found]
    return found


def _bare_callbacks(paths: list[Path]) -> set[int]:
    numbers = re.findall(
        rb'"biz_opaque_callback_data": "(\d+)"', b"".join(p.read_bytes() for p in paths)
    )
    return {int(n) for n in numbers}


async def _rows(api: httpx.AsyncClient, campaign_id: str) -> dict[int, dict[str, Any]]:
    page = (await api.get(f"/campaigns/{campaign_id}/recipients", params={"limit": 500})).json()
    return {r["id"]: r for r in page["items"]}


async def _rate(api: httpx.AsyncClient, instance_id: str) -> float | None:
    stats = (await api.get(f"/instances/{instance_id}")).json().get("stats") or {}
    rate = stats.get("current_rate_mps")
    return float(rate) if isinstance(rate, int | float) and rate > 0 else None


async def test_every_documented_messages_payload_gets_200_and_moves_only_ours(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, store: Store, tag: CallbackTag
) -> None:
    paths = _fixtures()
    instance = await register(api, phone_number_id=NUMBER, throughput_mps=100)
    # Work for the number, so that its actor runs (actors start with work): the asynchronous
    # 130429 below cuts that actor's rate.
    starter = await create_campaign(api, [instance["id"]], phones(1))
    assert (await api.post(f"/campaigns/{starter['id']}/send")).status_code == 200
    before = await wait_until(lambda: _rate(api, instance["id"]), timeout_s=60)
    campaign = await create_campaign(api, [instance["id"]], phones(4))
    ours = sorted(await _rows(api, campaign["id"]))
    delivered, read, failed, witness = ours
    collisions = _bare_callbacks(paths)
    assert len(collisions) >= 6
    await store.pool.executemany(
        "INSERT INTO whatsapp_campaign_recipients (id, campaign_id, phone)"
        " OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3)",
        [(i, campaign["id"], f"+5511{i % 10**9:09d}") for i in sorted(collisions)],
    )
    # Three of ours were sent and Meta answered with the fixtures' wamids.
    for row, wamid in (
        (delivered, WAMID_DELIVERED),
        (read, WAMID_READ),
        (failed, WAMID_FAILED_131050),
    ):
        await store.pool.execute(
            "UPDATE whatsapp_campaign_recipients SET status = 'sent', wamid = $2, sent_at = now()"
            " WHERE id = $1",
            row,
            wamid,
        )

    for path in paths:
        content, headers = signed(orjson.loads(path.read_bytes()))
        response = await anonymous.post(PREFIX + "/webhook", content=content, headers=headers)
        assert response.status_code == 200, (path.name, response.text)
    # FIFO: once our own tagged status posted last is applied, every fixture was.
    last = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "x",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "statuses": [
                                {
                                    "id": "wamid.witness",
                                    "status": "delivered",
                                    "timestamp": "1751142899",
                                    "biz_opaque_callback_data": tag.make(witness),
                                }
                            ]
                        },
                    }
                ],
            }
        ],
    }
    content, headers = signed(last)
    assert (
        await anonymous.post(PREFIX + "/webhook", content=content, headers=headers)
    ).status_code == 200

    async def applied() -> dict[int, dict[str, Any]] | None:
        rows = await _rows(api, campaign["id"])
        return rows if rows[witness]["status"] == "delivered" else None

    rows = await wait_until(applied, timeout_s=30)
    for collision in collisions:
        assert rows[collision]["status"] == "pending", rows[collision]
        assert rows[collision]["wamid"] is None
    assert rows[delivered]["status"] == "delivered"
    assert rows[read]["status"] == "read"
    assert rows[failed]["status"] == "failed"
    assert rows[failed]["error_code"] == 131050
    assert rows[failed]["error_details"]
    assert rows[witness]["wamid"] == "wamid.witness"
    # value.errors[] (an asynchronous 130429) on our number: its rate was cut.
    after = await wait_until(lambda: _lower(api, instance["id"], before), timeout_s=30)
    assert after < before


async def _lower(api: httpx.AsyncClient, instance_id: str, before: float) -> float | None:
    rate = await _rate(api, instance_id)
    return rate if rate is not None and rate < before else None
