"""List hygiene: is an E.164 phone a number some numbering plan allows (issue 15)?

The E.164 shape (``+`` and 7 to 15 digits) says nothing of whether the number can exist:
``+5511000000000`` has the shape, yet no Brazilian number starts with 0 after its area code.
Google's numbering plans (the ``phonenumbers`` package) say which ranges each country assigns;
a recipient whose phone is in none of them is recorded ``invalid`` and never sent.

The answer is exactly ``phonenumbers.is_valid_number(phonenumbers.parse(phone))``
(tests/test_numbering.py compares the two on every calling code), computed faster:
``parse`` costs ~20 µs a number (it handles any human spelling: spaces, extensions, national
prefixes) and a list of a million costs 20 s of CPU for it. A phone that passed the E.164
regex needs none of that: its calling code is split off the digits as ``parse`` does, and the
national number is matched against each region's patterns, compiled once per region. Only a
national number that starts with its country's national prefix (``parse`` may strip or
transform it: rare in E.164, where no national prefix belongs) goes through ``parse``.
The verdicts are memoized on the full number: a list that repeats a number pays once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    REGION_CODE_FOR_NON_GEO_ENTITY,
    PhoneMetadata,
)

MAX_COUNTRY_CODE_DIGITS = 3
MIN_NSN_DIGITS = 2
"""``parse`` refuses a shorter national number (too short to be a phone number)."""
MEMO_SIZE = 2**16
"""Numbers whose verdict is remembered (most recent first): repeats in a list pay once."""

_TYPES = (
    "mobile",
    "fixed_line",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)
"""Every number type ``phonenumbers`` knows: a number of any of them is valid. The most
common first: a list's numbers are found valid after one or two patterns."""


@dataclass(frozen=True, slots=True)
class _Desc:
    """A number description: its allowed lengths (empty: any) and its pattern."""

    lengths: frozenset[int]
    pattern: re.Pattern[str]

    def matches(self, nsn: str) -> bool:
        return (not self.lengths or len(nsn) in self.lengths) and bool(self.pattern.fullmatch(nsn))


@dataclass(frozen=True, slots=True)
class _Region:
    """One region's plan, as ``phonenumbers``' ``_number_type_helper`` reads it."""

    general: _Desc | None
    types: tuple[_Desc, ...]
    leading_digits: re.Pattern[str] | None
    national_prefix: re.Pattern[str] | None

    def valid(self, nsn: str) -> bool:
        """A number of some type (the type itself does not matter here)."""
        if self.general is None or not self.general.matches(nsn):
            return False
        return any(desc.matches(nsn) for desc in self.types)


def _desc(desc: phonenumbers.PhoneNumberDesc | None) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return _Desc(frozenset(desc.possible_length or ()), re.compile(desc.national_number_pattern))


def _region(country_code: int, region_code: str) -> _Region | None:
    if region_code == REGION_CODE_FOR_NON_GEO_ENTITY:
        metadata = PhoneMetadata.metadata_for_nongeo_region(country_code, None)
    else:
        metadata = PhoneMetadata.metadata_for_region(region_code, None)
    if metadata is None:
        return None
    types = (_desc(getattr(metadata, name)) for name in _TYPES)
    prefix = metadata.national_prefix_for_parsing
    return _Region(
        general=_desc(metadata.general_desc),
        types=tuple(d for d in types if d is not None),
        leading_digits=re.compile(metadata.leading_digits) if metadata.leading_digits else None,
        national_prefix=re.compile(prefix) if prefix else None,
    )


@cache
def _plan(country_code: int) -> tuple[_Region | None, ...]:
    """The regions of a calling code, the main one first (as ``phonenumbers`` lists them)."""
    return tuple(_region(country_code, r) for r in COUNTRY_CODE_TO_REGION_CODE[country_code])


def _split(digits: str) -> tuple[int, str]:
    """The calling code and the national number, as ``parse`` splits them (0: none known)."""
    if digits.startswith("0"):
        return 0, digits
    for size in range(1, min(len(digits), MAX_COUNTRY_CODE_DIGITS) + 1):
        code = int(digits[:size])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            return code, digits[size:]
    return 0, digits


def _parsed_valid(phone: str) -> bool:
    """The library's own answer, for the numbers the fast path does not decide."""
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(phone)))
    except phonenumbers.NumberParseException:
        return False


@lru_cache(maxsize=MEMO_SIZE)
def is_valid_phone(phone: str) -> bool:
    """Whether ``phone`` (already E.164-shaped: ``+`` and digits) is in a numbering plan."""
    code, nsn = _split(phone[1:])
    if code == 0 or len(nsn) < MIN_NSN_DIGITS:
        return False
    regions = _plan(code)
    main = regions[0]
    if main is None or (main.national_prefix is not None and main.national_prefix.match(nsn)):
        return _parsed_valid(phone)
    if len(regions) == 1:
        return main.valid(nsn)
    # A calling code shared by regions (+1, +7, +44...): the first region whose leading digits
    # match, else the first where the number is valid, decides (region_code_for_number).
    for region in regions:
        if region is None:
            continue
        if region.leading_digits is not None:
            if region.leading_digits.match(nsn):
                return region.valid(nsn)
        elif region.valid(nsn):
            return True
    return False
