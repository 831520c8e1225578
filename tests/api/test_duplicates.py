"""One message per address per campaign, over real HTTP: inline, NDJSON, CSV, across and
during appends, and an append that races with the campaign's completion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.api.conftest import assert_error, create_campaign
from tests.api.test_recipients import CSV, JSONL, jsonl
from tests.phones import block, phone
from tests.stack import wait_until


def _phone(n: int, base: int) -> str:
    return phone(base, n)


def _base() -> int:
    return block()


async def _show(api: httpx.AsyncClient, campaign: str) -> dict[str, Any]:
    response = await api.get(f"/campaigns/{campaign}")
    assert response.status_code == 200, response.text
    shown: dict[str, Any] = response.json()
    return shown


async def _listed(api: httpx.AsyncClient, campaign: str, status: str) -> list[dict[str, Any]]:
    response = await api.get(
        f"/campaigns/{campaign}/recipients", params={"status": status, "limit": 1000}
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _counted(shown: dict[str, Any]) -> int:
    """Every row is in exactly one of these (the campaign is not sending)."""
    return int(
        shown["pending"]
        + shown["queued"]
        + shown["sending"]
        + shown["total_failed"]
        + shown["total_duplicates"]
    )


async def test_inline_duplicates_are_kept_listed_and_counted(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    base = _base()
    recipients = [
        {"phone": _phone(1, base), "variables": {"name": "Ana"}},
        {"phone": _phone(2, base)},
        {"phone": _phone(1, base), "variables": {"name": "Ana, exported twice"}},
        {"user_id": f"BR.dup{base}"},
        {"user_id": f"BR.dup{base}"},
    ]
    created = await create_campaign(api, [idle_instance], recipients)
    assert (created["total_recipients"], created["total_duplicates"], created["pending"]) == (
        5,
        2,
        3,
    )
    duplicates = await _listed(api, created["id"], "duplicate")
    assert [(r["phone"], r["user_id"], r["variables"]) for r in duplicates] == [
        (_phone(1, base), None, {"name": "Ana, exported twice"}),
        (None, f"BR.dup{base}", None),
    ]
    pending = await _listed(api, created["id"], "pending")
    assert pending[0]["variables"] == {"name": "Ana"}
    assert _counted(await _show(api, created["id"])) == 5


async def test_ndjson_and_csv_appends_say_how_many_were_duplicates(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    base = _base()
    created = await create_campaign(api, [idle_instance], [{"phone": _phone(1, base)}])
    path = f"/campaigns/{created['id']}/recipients"

    # One already in the campaign, one twice in the upload, one new.
    lines = jsonl([{"phone": _phone(n, base)} for n in (1, 2, 2, 3)])
    response = await api.post(path, content=lines, headers=JSONL)
    assert response.status_code == 200, response.text
    assert response.json() == {"added": 4, "duplicates": 2, "invalid": 0, "total_recipients": 5}

    # The same customers exported again as CSV, plus a BSUID that is not a phone's twin.
    csv = (
        "phone,user_id,name\r\n"
        f"{_phone(3, base)},,Carla\r\n"
        f"{_phone(4, base)},,Davi\r\n"
        f",BR.{base}00001,Eva\r\n"
        f"{_phone(4, base)},,Davi again\r\n"
        f"{_phone(1, base)},,Ana\r\n"
    ).encode()
    response = await api.post(path, content=csv, headers=CSV)
    assert response.status_code == 200, response.text
    assert response.json() == {"added": 5, "duplicates": 3, "invalid": 0, "total_recipients": 10}

    shown = await _show(api, created["id"])
    assert (shown["total_recipients"], shown["pending"], shown["total_duplicates"]) == (10, 5, 5)
    assert _counted(shown) == 10
    sendable = [r["phone"] or r["user_id"] for r in await _listed(api, created["id"], "pending")]
    assert len(sendable) == len(set(sendable)) == 5


async def test_a_phone_and_a_bsuid_are_different_addresses(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    base = _base()
    digits = _phone(7, base).lstrip("+")
    created = await create_campaign(
        api, [idle_instance], [{"phone": f"+{digits}"}, {"user_id": f"BR.{digits}"}]
    )
    assert (created["total_duplicates"], created["pending"]) == (0, 2)


async def test_concurrent_appends_of_one_list_send_each_address_once(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    base = _base()
    created = await create_campaign(api, [idle_instance], [])
    path = f"/campaigns/{created['id']}/recipients"
    count = 3_000

    async def upload() -> AsyncIterator[bytes]:
        for start in range(0, count, 500):
            await asyncio.sleep(0.01)  # both uploads stream at the same time
            yield jsonl([{"phone": _phone(n, base)} for n in range(start, start + 500)])

    responses = await asyncio.gather(
        api.post(path, content=upload(), headers=JSONL),
        api.post(path, content=upload(), headers=JSONL),
    )
    for response in responses:
        assert response.status_code == 200, response.text
    assert sorted(r.json()["duplicates"] for r in responses) == [0, count]
    shown = await _show(api, created["id"])
    assert (shown["total_recipients"], shown["pending"], shown["total_duplicates"]) == (
        2 * count,
        count,
        count,
    )


async def test_an_append_racing_completion_is_refused_whole_and_later_ones_too(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    """A started campaign with nothing to send completes at once; an upload that streams
    across that moment must not leave rows pending in it."""
    base = _base()
    created = await create_campaign(api, [idle_instance], [])
    campaign = created["id"]

    async def completed() -> bool:
        return (await _show(api, campaign))["status"] == "completed"

    async def upload() -> AsyncIterator[bytes]:
        yield jsonl([{"phone": _phone(n, base)} for n in range(1, 500)])
        await asyncio.sleep(0.5)  # the server is inside the ingest now
        started = await api.post(f"/campaigns/{campaign}/send")
        assert started.status_code == 200, started.text
        await wait_until(completed, timeout_s=60)
        yield jsonl([{"phone": _phone(n, base)} for n in range(500, 1_000)])

    response = await api.post(f"/campaigns/{campaign}/recipients", content=upload(), headers=JSONL)
    error = assert_error(response, 409, "campaign_finished")
    assert error["details"] == {"status": "completed"}
    shown = await _show(api, campaign)
    assert (shown["status"], shown["total_recipients"], shown["pending"]) == ("completed", 0, 0)

    again = await api.post(
        f"/campaigns/{campaign}/recipients",
        content=jsonl([{"phone": _phone(2_000, base)}]),
        headers=JSONL,
    )
    assert_error(again, 409, "campaign_finished")
