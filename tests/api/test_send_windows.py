"""Send windows, expiry and the rate cap through the API: stored as given, shown with the
campaign, and every invalid setting a 422 naming its field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.conftest import TEMPLATE, assert_error, create_campaign, phones, unique

OFFICE = {"days": ["fri", "mon"], "start": "09:00", "end": "18:00", "timezone": "Europe/Berlin"}


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def test_a_campaign_keeps_its_window_expiry_and_cap(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    expires = later(days=2)
    campaign = await create_campaign(
        api,
        [idle_instance],
        phones(2),
        send_window=OFFICE,
        expires_at=expires,
        max_per_minute=600,
    )
    assert campaign["send_window"] == {
        "days": ["mon", "fri"],
        "start": "09:00:00",
        "end": "18:00:00",
        "timezone": "Europe/Berlin",
        "fallback_timezone": None,
    }
    assert datetime.fromisoformat(campaign["expires_at"]) == datetime.fromisoformat(expires)
    assert campaign["max_per_minute"] == 600
    # A draft waits for nobody's window yet: it is not running.
    assert (campaign["waiting"], campaign["next_window_at"], campaign["total_expired"]) == (
        0,
        None,
        0,
    )
    shown = (await api.get(f"/campaigns/{campaign['id']}")).json()
    assert shown == campaign


async def test_a_window_per_recipient_crossing_midnight(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    window = {
        "days": ["sat"],
        "start": "22:00:30",
        "end": "06:00",
        "timezone": "recipient",
        "fallback_timezone": "America/Sao_Paulo",
    }
    campaign = await create_campaign(api, [idle_instance], phones(1), send_window=window)
    assert campaign["send_window"]["timezone"] == "recipient"
    assert campaign["send_window"]["start"] == "22:00:30"


def window(**changes: Any) -> dict[str, Any]:
    given = {**OFFICE, **changes}
    return {k: v for k, v in given.items() if v is not ...}


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("no days", {"send_window": window(days=[])}, "send_window.days"),
    ("days missing", {"send_window": window(days=...)}, "send_window.days"),
    ("unknown day", {"send_window": window(days=["mon", "funday"])}, "send_window.days.1"),
    ("a day twice", {"send_window": window(days=["mon", "mon"])}, "send_window.days"),
    ("bad hour", {"send_window": window(start="25:00")}, "send_window.start"),
    ("start without end", {"send_window": window(end=...)}, "send_window.end"),
    ("end without start", {"send_window": window(start=...)}, "send_window.end"),
    ("start equals end", {"send_window": window(end="09:00:00")}, "send_window.end"),
    ("hours with an offset", {"send_window": window(start="09:00+02:00")}, "send_window.start"),
    ("bad zone", {"send_window": window(timezone="Mars/Olympus")}, "send_window.timezone"),
    ("zone as a path", {"send_window": window(timezone="../etc/passwd")}, "send_window.timezone"),
    ("no zone", {"send_window": window(timezone=...)}, "send_window.timezone"),
    (
        "recipient zone without fallback",
        {"send_window": window(timezone="recipient")},
        "send_window.fallback_timezone",
    ),
    (
        "bad fallback zone",
        {"send_window": window(timezone="recipient", fallback_timezone="Nowhere/At_All")},
        "send_window.fallback_timezone",
    ),
    (
        "fallback without recipient zone",
        {"send_window": window(fallback_timezone="UTC")},
        "send_window.fallback_timezone",
    ),
    ("unknown window field", {"send_window": window(holidays=True)}, "send_window.holidays"),
    ("expires_at in the past", {"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    ("expires_at without zone", {"expires_at": "2031-01-01T00:00:00"}, "expires_at"),
    ("expires_at not a date", {"expires_at": "soon"}, "expires_at"),
    (
        "expires_at before scheduled_at",
        {"scheduled_at": later(days=2), "expires_at": later(days=1)},
        "expires_at",
    ),
    ("max_per_minute 0", {"max_per_minute": 0}, "max_per_minute"),
    ("max_per_minute negative", {"max_per_minute": -5}, "max_per_minute"),
    ("max_per_minute huge", {"max_per_minute": 10**12}, "max_per_minute"),
    ("max_per_minute a string", {"max_per_minute": "fast"}, "max_per_minute"),
]


@pytest.mark.parametrize(("case", "changes", "where"), INVALID, ids=[c[0] for c in INVALID])
async def test_every_invalid_setting_is_a_422_naming_it(
    api: httpx.AsyncClient, idle_instance: str, case: str, changes: dict[str, Any], where: str
) -> None:
    body = {
        "name": unique("windows"),
        "instance_ids": [idle_instance],
        "template": dict(TEMPLATE),
        "recipients": phones(1),
        **changes,
    }
    error = assert_error(await api.post("/campaigns", json=body), 422, "validation_error")
    locations = [".".join(d["loc"]) for d in error["details"]]
    assert where in locations, (case, locations)
    assert where.split(".")[0] in error["message"]
