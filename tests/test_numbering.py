"""The fast numbering-plan check says exactly what ``phonenumbers`` says of the parsed number,
for every calling code: its example numbers, their one-digit changes, random digits."""

from __future__ import annotations

import random

import phonenumbers
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.meta.messages import E164_RE
from dispatcher.numbering import is_valid_phone

TYPES = (
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
)


def library(phone: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(phone)))
    except phonenumbers.NumberParseException:
        return False


def examples() -> list[str]:
    found = []
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
                numbers = [phonenumbers.example_number_for_non_geo_entity(code)]
            else:
                numbers = [phonenumbers.example_number_for_type(region, t) for t in TYPES]
            found += [
                phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
                for n in numbers
                if n is not None
            ]
    return found


def mutations(phone: str, rng: random.Random) -> list[str]:
    """One digit changed, one dropped, one added: mostly invalid, some valid."""
    digits = phone[1:]
    changed = []
    for _ in range(10):
        i = rng.randrange(1, len(digits))
        changed.append("+" + digits[:i] + str(rng.randrange(10)) + digits[i + 1 :])
    return [*changed, phone[:-1], phone + str(rng.randrange(10))]


def test_agrees_with_phonenumbers_on_every_calling_code() -> None:
    rng = random.Random(15)
    phones = []
    for example in examples():
        phones += [example, *mutations(example, rng)]
    phones = [p for p in phones if E164_RE.fullmatch(p)]
    assert sum(map(library, phones)) > 1_000  # valid numbers are well represented
    assert [p for p in phones if is_valid_phone(p) != library(p)] == []


@given(st.from_regex(E164_RE, fullmatch=True))
def test_agrees_with_phonenumbers_on_any_e164_phone(phone: str) -> None:
    assert is_valid_phone(phone) == library(phone)


def test_test_and_demo_numbers_are_valid() -> None:
    """The sandbox's fictitious customers must be sendable: a Brazilian mobile is an area code,
    9 and eight digits; +1 555 01xx is reserved for fiction and no valid number."""
    assert is_valid_phone("+5511999990001")
    assert is_valid_phone("+5511900000000")
    assert not is_valid_phone("+5511000000000")
    assert not is_valid_phone("+15550100000")
