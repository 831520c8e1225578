from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import assert_error, register, unique
from tests.stack import wait_until


async def test_register_list_and_show_never_reveal_the_token(api: httpx.AsyncClient) -> None:
    token = unique("secret-token")
    instance = await register(api, access_token=token, name="api test", messaging_tier="2K")
    assert instance["messaging_tier"] == "TIER_2K"
    assert instance["status"] == "active"
    assert instance["throughput_mps"] == 1000
    assert "access_token" not in instance

    listed = await api.get("/instances", params={"business_id": instance["business_id"]})
    assert listed.status_code == 200
    assert [i["id"] for i in listed.json()["items"]] == [instance["id"]]
    assert token not in listed.text

    async def with_stats() -> dict[str, Any] | None:
        shown = await api.get(f"/instances/{instance['id']}")
        assert shown.status_code == 200
        assert token not in shown.text
        body: dict[str, Any] = shown.json()
        return body if body["stats"] else None

    shown = await wait_until(with_stats, timeout_s=60)
    assert shown["phone_number_id"] == instance["phone_number_id"]
    assert shown["stats"]["configured_rate_mps"] == 1000
    # A number without work has no actor: its stats come from its row, as stopped.
    assert (shown["stats"]["state"], shown["stats"]["pid"]) == ("stopped", None)


async def test_re_registering_updates_the_number(api: httpx.AsyncClient) -> None:
    first = await register(api, messaging_tier=2000)
    again = await api.post(
        "/instances",
        json={
            "phone_number_id": first["phone_number_id"],
            "access_token": "a-new-token",
            "business_id": first["business_id"],
            "name": "renamed",
            "messaging_tier": "TIER_UNLIMITED",
        },
    )
    assert again.status_code == 201, again.text
    assert again.json()["id"] == first["id"]
    assert again.json()["name"] == "renamed"
    assert again.json()["messaging_tier"] == "TIER_UNLIMITED"
    assert again.json()["throughput_mps"] == 1000  # kept when not given


VALID = {"phone_number_id": "123456", "access_token": "t", "business_id": "biz-1"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in VALID.items() if k != "access_token"}, "access_token"),
        ({k: v for k, v in VALID.items() if k != "phone_number_id"}, "phone_number_id"),
        ({k: v for k, v in VALID.items() if k != "business_id"}, "business_id"),
        ({**VALID, "access_token": ""}, "access_token"),
        ({**VALID, "access_token": "abc\r\nX-Injected: 1"}, "access_token"),
        ({**VALID, "access_token": "has space"}, "access_token"),
        ({**VALID, "phone_number_id": "12 34"}, "phone_number_id"),
        ({**VALID, "messaging_tier": "TIER_9"}, "messaging_tier"),
        ({**VALID, "messaging_tier": 1234}, "messaging_tier"),
        ({**VALID, "throughput_mps": 0}, "throughput_mps"),
        ({**VALID, "throughput_mps": "fast"}, "throughput_mps"),
        ({**VALID, "name": 5}, "name"),
        ({**VALID, "colour": "red"}, "colour"),
    ],
)
async def test_invalid_registrations_are_refused(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    error = assert_error(await api.post("/instances", json=body), 422, "validation_error")
    assert error["details"][0]["loc"][0] == field
    assert "t" not in [d.get("input") for d in error["details"]]  # inputs are never echoed
    listed = await api.get("/instances", params={"business_id": "biz-1"})
    assert listed.json()["items"] == []


async def test_unknown_and_malformed_instance_ids_are_404(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/instances/8f6c2b0e-3a43-4c1a-9d0e-1a2b3c4d5e6f"), 404)
    assert_error(await api.get("/instances/not-a-uuid"), 404)


async def test_list_filters_are_validated(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/instances", params={"status": "sleepy"}), 422)
