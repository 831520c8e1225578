"""Variant assignment: deterministic, by weight, independent of the address's digits."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.ab.assign import VariantPicker

CAMPAIGN = uuid.UUID("00000000-0000-4000-8000-000000000015")


def _shares(picker: VariantPicker, n: int, variants: int) -> list[float]:
    counts = [0] * variants
    for i in range(n):
        counts[picker.pick_text(f"+5511{i:09d}")] += 1
    return [c / n for c in counts]


def test_the_same_address_always_gets_the_same_variant() -> None:
    first = VariantPicker(CAMPAIGN, [1, 1, 2])
    again = VariantPicker(uuid.UUID(str(CAMPAIGN)), [1.0, 1.0, 2.0])  # another process
    for i in range(1_000):
        address = f"+4915{i:08d}"
        assert first.pick_text(address) == again.pick_text(address)


def test_shares_follow_the_weights_on_sequential_numbers() -> None:
    shares = _shares(VariantPicker(CAMPAIGN, [1, 3]), 40_000, 2)
    assert abs(shares[0] - 0.25) < 0.01
    shares = _shares(VariantPicker(CAMPAIGN, [2, 2, 2, 2]), 40_000, 4)
    assert all(abs(s - 0.25) < 0.01 for s in shares)


def test_campaigns_split_the_same_list_differently() -> None:
    a = VariantPicker(CAMPAIGN, [1, 1])
    b = VariantPicker(uuid.uuid4(), [1, 1])
    same = sum(a.pick_text(f"+5511{i:09d}") == b.pick_text(f"+5511{i:09d}") for i in range(4_000))
    assert 1_800 < same < 2_200  # independent: about half agree


@given(st.lists(st.floats(0.01, 100.0), min_size=2, max_size=10), st.text(min_size=1))
def test_every_pick_is_a_variant(weights: list[float], address: str) -> None:
    index = VariantPicker(CAMPAIGN, weights).pick_text(address)
    assert 0 <= index < len(weights)
