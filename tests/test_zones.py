"""A recipient's zones from its phone number (prefix) or its BSUID (country)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as number_zones

from dispatcher.zones import MAIN_ZONES, main_zone, zones_for


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


def test_a_number_in_many_zones_has_its_countrys_main_zone() -> None:
    assert len(zones_for("+79161234567")) == 16  # a Moscow mobile: anywhere in Russia
    assert main_zone("+79161234567") == ZoneInfo("Europe/Moscow")
    assert main_zone("+61412345678") == ZoneInfo("Australia/Sydney")
    assert main_zone("US.1502576394655843") == ZoneInfo("America/New_York")
    assert main_zone("+12125551234") is None  # one zone: none needed
    assert main_zone("not a number") is None


def test_every_calling_code_that_spans_zones_names_its_main_zone() -> None:
    """A new multi-zone country in phonenumbers' data fails here rather than falling back to
    the campaign's zone, perhaps on another continent."""
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        if len(getattr(number_zones, "TIMEZONE_DATA", {}).get(str(code), ())) > 1:
            assert regions[0] in MAIN_ZONES, (code, regions)
    assert all(ZoneInfo(name) for name in MAIN_ZONES.values())
