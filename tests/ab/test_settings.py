"""A/B settings from plain values (the SDK's): a ValueError names the setting that is wrong."""

from __future__ import annotations

import pytest

from dispatcher.ab.settings import AbTest, ab_test_from

T = {"name": "promo", "language": "en_US"}


def test_defaults_and_a_round_trip_through_json() -> None:
    ab = ab_test_from([{"template": T}, {"template": T, "weight": 3, "label": "x"}], None, {})
    assert [(v.label, v.weight) for v in ab.variants] == [("A", 1.0), ("x", 3.0)]
    assert ab.confidence == 0.95
    assert ab.auto_winner is not None
    assert (ab.auto_winner.min_sends_per_variant, ab.auto_winner.confidence) == (1_000, 0.95)
    assert (ab.auto_winner.max_looks, ab.auto_winner.read_after_s) == (5, 3_600.0)
    assert AbTest.from_json(ab.to_json()) == ab


def test_settings_stored_before_looks_get_the_defaults() -> None:
    stored = {"variants": [{"label": "A", "weight": 1, "template": T}] * 2}
    stored["auto_winner"] = {"min_sends_per_variant": 10, "confidence": 0.9}
    auto = AbTest.from_json(stored).auto_winner
    assert auto is not None
    assert (auto.max_looks, auto.read_after_s) == (5, 3_600.0)


@pytest.mark.parametrize(
    ("variants", "confidence", "auto", "setting"),
    [
        ([{"template": T}], None, None, "variants"),
        ([{"template": T}] * 11, None, None, "variants"),
        ([{"template": {}}, {"template": T}], None, None, "variants.0.template"),
        ([{"template": T}, {"template": T, "weight": 0}], None, None, "variants.1.weight"),
        ([{"template": T, "label": "a"}, {"template": T, "label": "a"}], None, None, "variants"),
        ([{"template": T}] * 2, 1.0, None, "confidence"),
        ([{"template": T}] * 2, None, {"min_sends_per_variant": 0}, "auto_winner.min_sends"),
        ([{"template": T}] * 2, None, {"confidence": 0.1}, "auto_winner.confidence"),
        ([{"template": T}] * 2, None, {"max_looks": 0}, "auto_winner.max_looks"),
        ([{"template": T}] * 2, None, {"max_looks": 21}, "auto_winner.max_looks"),
        ([{"template": T}] * 2, None, {"read_after_s": -1}, "auto_winner.read_after_s"),
    ],
)
def test_a_wrong_setting_is_named(
    variants: list[dict], confidence: float | None, auto: dict | None, setting: str
) -> None:
    with pytest.raises(ValueError, match=f"^{setting}"):
        ab_test_from(variants, confidence, auto)
