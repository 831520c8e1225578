"""A recipient's time zones, from its phone number or its BSUID, with ``phonenumbers``.

phonenumbers maps a number's prefix to the zones it may be in: one for most numbers
(``+1 212`` New York, ``+55 11`` São Paulo), several when the prefix does not tell (a Russian
or Australian mobile, ``+1 800``). A BSUID (``BR.1502576394655843``, DESIGN.md) names only
its country: its zones are those of the country's calling code. The caller keeps them all:
a window must hold in every one of them (``dispatcher/windows.py``). Unknown (a prefix
phonenumbers has no zone for, an unknown country): no zone, and the campaign's zone applies.

When a number's zones never share an open hour (a Moscow mobile, ``+7 916``, may be anywhere
from Kaliningrad to Kamchatka: 16 zones, 10 hours apart), its country's main zone decides
(:func:`main_zone`): the zone most of the country's people live in (for a country named in
:data:`MAIN_ZONES`). phonenumbers' prefix data cannot narrow a mobile number (mobile prefixes
are not geographic), so the likeliest zone is the one most subscribers are in, and a message
at 10:00 in Moscow is far less surprising than one at 01:00 (the campaign's fallback zone may
be on another continent).
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

from dispatcher.meta.messages import BSUID_RE

UNKNOWN = "Etc/Unknown"
"""What phonenumbers answers for a prefix it has no zone for."""

MAIN_ZONES = {
    # The countries whose calling code spans zones in phonenumbers' data (checked in
    # tests/test_zones.py), each with the zone of most of its people.
    "US": "America/New_York",
    "CA": "America/Toronto",
    "RU": "Europe/Moscow",
    "KZ": "Asia/Almaty",
    "MX": "America/Mexico_City",
    "BR": "America/Sao_Paulo",
    "AU": "Australia/Sydney",
    "ID": "Asia/Jakarta",
    "ES": "Europe/Madrid",
    "PT": "Europe/Lisbon",
    "IT": "Europe/Rome",
    "GB": "Europe/London",
    "IE": "Europe/Dublin",
    "NO": "Europe/Oslo",
    "FI": "Europe/Helsinki",
    "NZ": "Pacific/Auckland",
    "EC": "America/Guayaquil",
    "CD": "Africa/Kinshasa",
    "MN": "Asia/Ulaanbaatar",
    "GL": "America/Nuuk",
    "RE": "Indian/Reunion",
    "CW": "America/Curacao",
    "KI": "Pacific/Tarawa",
    "PF": "Pacific/Tahiti",
    "FM": "Pacific/Pohnpei",
}
"""A country's main zone (region code -> zone): where most of its people are."""


def zones_for(address: str) -> tuple[ZoneInfo, ...]:
    """The zones a recipient (an E.164 phone or a BSUID) may be in; empty: unknown."""
    return recipient_zones(address)[0]


def main_zone(address: str) -> ZoneInfo | None:
    """The main zone of a recipient's country (:data:`MAIN_ZONES`); None: not named there
    (its zones then agree, or the campaign's zone applies)."""
    return recipient_zones(address)[1]


def recipient_zones(address: str) -> tuple[tuple[ZoneInfo, ...], ZoneInfo | None]:
    """Both at once (the number parsed once): the zones it may be in, its country's main."""
    if BSUID_RE.match(address):
        return _region_zones(address[:2]), _main(address[:2])
    try:
        number = phonenumbers.parse(address)
    except phonenumbers.NumberParseException:
        return (), None
    zones = _loaded(tuple(number_zones.time_zones_for_number(number)))
    if len(zones) < 2:
        return zones, None  # one zone or none: no main zone needed
    return zones, _main(phonenumbers.region_code_for_number(number))


@lru_cache(maxsize=512)
def _main(region: str | None) -> ZoneInfo | None:
    name = MAIN_ZONES.get(region or "")
    loaded = _loaded((name,)) if name else ()
    return loaded[0] if loaded else None


@lru_cache(maxsize=512)
def _region_zones(region: str) -> tuple[ZoneInfo, ...]:
    code = phonenumbers.country_code_for_region(region)
    if not code:
        return ()
    # Country-level data, as phonenumbers itself reads it for a non-geographic number (its
    # type stubs leave the table out).
    by_prefix: dict[str, tuple[str, ...]] = getattr(number_zones, "TIMEZONE_DATA", {})
    return _loaded(tuple(by_prefix.get(str(code), ())))


@lru_cache(maxsize=4096)
def _loaded(names: tuple[str, ...]) -> tuple[ZoneInfo, ...]:
    """The zones of ``names`` this machine's tz database has (a name phonenumbers knows and
    it does not is skipped rather than failing a whole batch)."""
    zones = []
    for name in names:
        if name == UNKNOWN:
            continue
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return tuple(zones)
