from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.meta.error_codes import Throttle
from dispatcher.policies.adaptive_rate import AdaptiveRate, AdaptiveRateConfig
from tests.clock import FakeClock

CONFIG = AdaptiveRateConfig(
    decrease_factor=0.5,
    hard_decrease_factor=0.1,
    min_rate_mps=1.0,
    increase_step_mps=4.0,
    increase_interval_s=1.0,
    quiet_period_s=10.0,
    cut_cooldown_s=1.0,
)

events = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=20, allow_nan=False),
        st.sampled_from([None, *Throttle]),
    ),
    max_size=100,
)


@given(ceiling=st.floats(min_value=1, max_value=1_000), events=events)
def test_rate_stays_between_floor_and_ceiling(ceiling, events):
    clock = FakeClock()
    aimd = AdaptiveRate(ceiling, CONFIG, clock)
    for gap, throttle in events:
        clock.advance(gap)
        if throttle is not None:
            aimd.on_throttle(throttle)
        assert aimd.floor <= aimd.rate() <= ceiling


@given(ceiling=st.floats(min_value=10, max_value=1_000), events=events)
def test_no_increase_within_the_quiet_period_after_a_throttle(ceiling, events):
    clock = FakeClock()
    aimd = AdaptiveRate(ceiling, CONFIG, clock)
    last_throttle_at = None
    rate_then = None
    for gap, throttle in events:
        clock.advance(gap)
        if throttle in (Throttle.THROUGHPUT, Throttle.API_CALLS, Throttle.SPAM):
            rate_then = aimd.on_throttle(throttle)
            last_throttle_at = clock.now
        elif last_throttle_at is not None and clock.now - last_throttle_at < CONFIG.quiet_period_s:
            assert aimd.rate() <= rate_then


@given(ceiling=st.floats(min_value=1, max_value=1_000), cuts=st.integers(1, 30))
def test_a_quiet_number_climbs_back_to_its_ceiling(ceiling, cuts):
    clock = FakeClock()
    aimd = AdaptiveRate(ceiling, CONFIG, clock)
    for _ in range(cuts):
        aimd.on_throttle(Throttle.SPAM)
    steps_needed = ceiling / CONFIG.increase_step_mps + 1
    clock.advance(CONFIG.quiet_period_s + steps_needed * CONFIG.increase_interval_s)
    assert aimd.rate() == ceiling


def test_throughput_throttle_halves_and_spam_cuts_hard():
    clock = FakeClock()
    aimd = AdaptiveRate(80, CONFIG, clock)
    assert aimd.on_throttle(Throttle.THROUGHPUT) == 40
    clock.advance(2)
    assert aimd.on_throttle(Throttle.SPAM) == pytest.approx(4)


def test_a_burst_of_throttles_cuts_once_per_cooldown():
    clock = FakeClock()
    aimd = AdaptiveRate(80, CONFIG, clock)
    for _ in range(20):  # answers to sends already in flight when the first came back
        aimd.on_throttle(Throttle.THROUGHPUT)
    assert aimd.rate() == 40
    clock.advance(CONFIG.cut_cooldown_s)
    assert aimd.on_throttle(Throttle.THROUGHPUT) == 20


def test_pair_throttle_leaves_the_rate_alone():
    aimd = AdaptiveRate(80, CONFIG, FakeClock())
    assert aimd.on_throttle(Throttle.PAIR) == 80


def test_increase_is_additive_after_the_quiet_period():
    clock = FakeClock()
    aimd = AdaptiveRate(80, CONFIG, clock)
    aimd.on_throttle(Throttle.THROUGHPUT)
    clock.advance(CONFIG.quiet_period_s - 0.01)
    assert aimd.rate() == 40
    clock.advance(0.01)
    assert aimd.rate() == 44
    clock.advance(2.5)
    assert aimd.rate() == 52


def test_lowering_the_ceiling_lowers_the_rate():
    aimd = AdaptiveRate(1000, CONFIG, FakeClock())
    aimd.set_ceiling(80)
    assert aimd.rate() == 80
    with pytest.raises(ValueError, match="ceiling"):
        aimd.set_ceiling(0)
