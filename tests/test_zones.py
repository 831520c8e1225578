"""A recipient's zones from its phone number (prefix) or its BSUID (country)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from dispatcher.zones import zones_for


def names(address: str) -> set[str]:
    return {zone.key for zone in zones_for(address)}


def test_a_phone_prefix_that_tells_its_zone() -> None:
    assert names("+12125551234") == {"America/New_York"}
    assert names("+14155550100") == {"America/Los_Angeles"}
    assert names("+5511987654321") == {"America/Sao_Paulo"}
    assert names("+4915112345678") == {"Europe/Berlin"}


def test_a_prefix_spanning_zones_keeps_them_all() -> None:
    zones = names("+61412345678")  # an Australian mobile: anywhere in Australia
    assert {"Australia/Perth", "Australia/Sydney"} <= zones


def test_a_bsuid_takes_its_countrys_zones() -> None:
    assert names("BR.1502576394655843") == {
        "America/Manaus",
        "America/Noronha",
        "America/Rio_Branco",
        "America/Sao_Paulo",
    }
    assert names("DE.ENT.abc123") == {"Europe/Berlin"}  # a parent BSUID too


def test_unknown_numbers_and_countries_have_no_zone() -> None:
    assert zones_for("XX.123") == ()
    assert zones_for("+5511000000001") == ()  # not a valid Brazilian number: unknown
    assert zones_for("not a number") == ()
    assert all(isinstance(zone, ZoneInfo) for zone in zones_for("+12125551234"))
