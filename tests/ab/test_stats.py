"""Wilson intervals and the two-proportion z-test against known figures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.ab.stats import Proportion, wilson, z_test


def test_wilson_matches_the_textbook_figures() -> None:
    # 8 of 10 at 95 %: Wilson's interval is (0.4902, 0.9433) (e.g. Brown, Cai, DasGupta 2001).
    low, high = wilson(Proportion(8, 10), 0.95)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_is_never_degenerate_at_the_edges() -> None:
    low, high = wilson(Proportion(0, 20), 0.95)
    assert low == 0.0
    assert 0.1 < high < 0.2  # the Wald interval would be (0, 0)
    assert wilson(Proportion(0, 0), 0.95) == (0.0, 1.0)


def test_a_higher_confidence_widens_the_interval() -> None:
    narrow = wilson(Proportion(30, 100), 0.90)
    wide = wilson(Proportion(30, 100), 0.99)
    assert wide[0] < narrow[0] < 0.3 < narrow[1] < wide[1]


@given(st.integers(0, 10_000), st.integers(1, 10_000), st.floats(0.5, 0.999))
def test_wilson_holds_the_rate_within_zero_and_one(reads: int, sent: int, confidence: float):
    reads = min(reads, sent)
    low, high = wilson(Proportion(reads, sent), confidence)
    assert 0.0 <= low <= reads / sent <= high <= 1.0


def test_the_z_test_of_a_known_difference() -> None:
    # 60/100 against 40/100: pooled 0.5, se = sqrt(0.25 * 0.02) = 0.0707, z = 2.828.
    z, p = z_test(Proportion(60, 100), Proportion(40, 100))
    assert z == pytest.approx(2.8284, abs=1e-3)
    assert p == pytest.approx(0.00234, abs=1e-4)
    z_back, p_back = z_test(Proportion(40, 100), Proportion(60, 100))
    assert z_back == pytest.approx(-z)
    assert p_back == pytest.approx(1 - p)


def test_no_difference_to_see_is_no_evidence() -> None:
    assert z_test(Proportion(10, 10), Proportion(5, 5)) == (0.0, 1.0)
    assert z_test(Proportion(3, 10), Proportion(0, 0)) == (0.0, 1.0)
