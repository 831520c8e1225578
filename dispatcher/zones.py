"""A recipient's time zones, from its phone number or its BSUID, with ``phonenumbers``.

phonenumbers maps a number's prefix to the zones it may be in: one for most numbers
(``+1 212`` New York, ``+55 11`` São Paulo), several when the prefix does not tell (a Russian
or Australian mobile, ``+1 800``). A BSUID (``BR.1502576394655843``, DESIGN.md) names only
its country: its zones are those of the country's calling code. The caller keeps them all:
a window must hold in every one of them (``dispatcher/windows.py``). Unknown (a prefix
phonenumbers has no zone for, an unknown country): no zone, and the campaign's zone applies.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

from dispatcher.meta.messages import BSUID_RE

UNKNOWN = "Etc/Unknown"
"""What phonenumbers answers for a prefix it has no zone for."""


def zones_for(address: str) -> tuple[ZoneInfo, ...]:
    """The zones a recipient (an E.164 phone or a BSUID) may be in; empty: unknown."""
    if BSUID_RE.match(address):
        return _region_zones(address[:2])
    try:
        number = phonenumbers.parse(address)
    except phonenumbers.NumberParseException:
        return ()
    return _loaded(tuple(number_zones.time_zones_for_number(number)))


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
