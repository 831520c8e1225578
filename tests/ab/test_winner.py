"""The automatic winner's decision, without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.ab.settings import AutoWinner
from dispatcher.ab.winner import Arm, comparison_alpha, decide, look_at, look_sends

RULE = AutoWinner(min_sends_per_variant=100, confidence=0.95, max_looks=1)
"""One look: the variants' correction alone."""


def test_a_clearly_better_variant_wins_with_its_figures() -> None:
    decision = decide([Arm("A", 200, 60), Arm("B", 200, 120)], RULE, 0.95)
    assert decision is not None
    assert decision.variant == 1
    assert decision.z > 1.645
    assert decision.p_value < 0.05
    figures = decision.figures
    assert [v["sent"] for v in figures["variants"]] == [200, 200]
    assert [v["read_rate"] for v in figures["variants"]] == [0.3, 0.6]
    low, high = figures["variants"][1]["interval"]
    assert low < 0.6 < high
    assert figures["comparisons"] == [
        {"variant": 0, "label": "A", "z": decision.z, "p": decision.p_value}
    ]


def test_nothing_is_decided_before_every_variant_has_its_sends() -> None:
    assert decide([Arm("A", 99, 0), Arm("B", 500, 400)], RULE, 0.95) is None


def test_a_difference_within_the_noise_decides_nothing() -> None:
    # 0.50 vs 0.45 on 100 each: z about 0.71, far from 1.645.
    assert decide([Arm("A", 100, 50), Arm("B", 100, 45)], RULE, 0.95) is None


def test_the_winner_must_beat_every_other_variant() -> None:
    # C beats A clearly but not B: no winner yet.
    arms = [Arm("A", 300, 30), Arm("B", 300, 115), Arm("C", 300, 120)]
    assert decide(arms, RULE, 0.95) is None
    arms[1] = Arm("B", 300, 60)
    decision = decide(arms, RULE, 0.95)
    assert decision is not None
    assert decision.variant == 2
    assert {c["variant"] for c in decision.figures["comparisons"]} == {0, 1}


def test_a_stricter_confidence_needs_more_evidence() -> None:
    arms = [Arm("A", 200, 80), Arm("B", 200, 100)]  # z about 2.0: p about 0.022
    assert decide(arms, AutoWinner(100, 0.95, max_looks=1), 0.95) is not None
    assert decide(arms, AutoWinner(100, 0.99, max_looks=1), 0.95) is None


def test_the_best_of_two_is_tested_two_sided() -> None:
    # p about 0.044: below 0.05, but the best was chosen after looking; both could have been.
    arms = [Arm("A", 200, 80), Arm("B", 200, 97)]
    assert comparison_alpha(RULE, 2) == pytest.approx(0.025)
    assert decide(arms, RULE, 0.95) is None


def test_the_best_of_k_is_tested_at_alpha_over_k() -> None:
    # C against A and B: p about 0.018 each, below 0.05 / 2 but not 0.05 / 3.
    arms = [Arm("A", 200, 60), Arm("B", 200, 60), Arm("C", 200, 80)]
    assert comparison_alpha(RULE, 3) == pytest.approx(0.05 / 3)
    assert decide(arms, RULE, 0.95) is None
    assert decide(arms[1:], RULE, 0.95) is not None


def test_looks_double_the_sends_and_share_alpha() -> None:
    rule = AutoWinner(100, 0.95, max_looks=5)
    assert look_sends(rule) == [100, 200, 400, 800, 1600]
    assert [look_at(n, rule) for n in (0, 99, 100, 199, 200, 799, 1600, 10**6)] == [
        None,
        None,
        0,
        0,
        1,
        2,
        4,
        4,
    ]
    assert comparison_alpha(rule, 2) == pytest.approx(0.005)
    # p about 0.022: enough at one look of two variants, not when five share alpha.
    arms = [Arm("A", 200, 80), Arm("B", 200, 100)]
    assert decide(arms, RULE, 0.95) is not None
    assert decide(arms, rule, 0.95, look=1) is None
    # A look whose sends the variants lack decides nothing.
    assert decide([Arm("A", 200, 0), Arm("B", 200, 200)], rule, 0.95, look=2) is None
    clear = decide([Arm("A", 400, 40), Arm("B", 400, 360)], rule, 0.95, look=2)
    assert clear is not None
    assert clear.figures["look"] == 3
    assert clear.figures["alpha"] == pytest.approx(0.005)


@given(st.integers(100, 5_000), st.floats(0.0, 1.0))
def test_equal_arms_never_decide(sent: int, rate: float) -> None:
    reads = int(sent * rate)
    assert decide([Arm("A", sent, reads), Arm("B", sent, reads)], RULE, 0.95) is None
