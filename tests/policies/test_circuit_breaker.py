from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.meta.error_codes import ErrorClass
from dispatcher.policies.circuit_breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitBreakerConfig,
)
from tests.clock import FakeClock

CONFIG = CircuitBreakerConfig(
    failure_ratio=0.5,
    min_volume=10,
    window_s=10.0,
    buckets=10,
    open_duration_s=5.0,
    half_open_probes=2,
)

outcomes = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=3, allow_nan=False),
        st.sampled_from([None, *ErrorClass]),
    ),
    max_size=200,
)


@given(outcomes)
def test_an_open_breaker_lets_nothing_through_until_the_cooldown_ends(outcomes):
    clock = FakeClock()
    breaker = CircuitBreaker(CONFIG, clock)
    for gap, outcome in outcomes:
        clock.advance(gap)
        state_before = breaker.state
        wait = breaker.try_acquire()
        if state_before is BreakerState.OPEN:
            assert wait > 0
            continue
        if wait > 0:
            assert state_before is BreakerState.HALF_OPEN
            continue
        breaker.record(outcome)
        if breaker.state is BreakerState.OPEN:
            assert breaker.retry_after() == pytest.approx(CONFIG.open_duration_s)


@given(outcomes)
def test_only_transient_errors_open_the_breaker(outcomes):
    clock = FakeClock()
    breaker = CircuitBreaker(CONFIG, clock)
    for gap, outcome in outcomes:
        clock.advance(gap)
        if outcome is not ErrorClass.TRANSIENT:
            breaker.try_acquire()
            breaker.record(outcome)
    assert breaker.state is BreakerState.CLOSED


@given(
    failures=st.integers(min_value=0, max_value=30),
    successes=st.integers(min_value=0, max_value=30),
)
def test_opens_exactly_on_ratio_over_minimum_volume(failures, successes):
    clock = FakeClock()
    breaker = CircuitBreaker(CONFIG, clock)
    for _ in range(successes):
        breaker.record_success()
    for _ in range(failures):
        breaker.record_failure()
    should_open = any(
        successes + k >= CONFIG.min_volume and k >= CONFIG.failure_ratio * (successes + k)
        for k in range(1, failures + 1)
    )
    assert (breaker.state is BreakerState.OPEN) == should_open


def test_old_failures_leave_the_window():
    clock = FakeClock()
    breaker = CircuitBreaker(CONFIG, clock)
    for _ in range(9):
        breaker.record_failure()
    clock.advance(CONFIG.window_s)
    breaker.record_failure()  # 10 calls in all, but the first 9 are outside the window
    assert breaker.state is BreakerState.CLOSED


def test_half_open_lets_a_few_probes_and_closes_on_success():
    clock = FakeClock()
    breaker = CircuitBreaker(CONFIG, clock)
    for _ in range(10):
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.try_acquire() == pytest.approx(5.0)
    clock.advance(5.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.try_acquire() == 0.0
    assert breaker.try_acquire() == 0.0
    assert math.isinf(breaker.try_acquire())
    breaker.record(None)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.try_acquire() == 0.0


def test_a_failed_probe_opens_again_for_a_full_cooldown():
    clock = FakeClock()
    breaker = CircuitBreaker(CONFIG, clock)
    for _ in range(10):
        breaker.record_failure()
    clock.advance(5.0)
    breaker.try_acquire()
    clock.advance(1.0)
    breaker.record(ErrorClass.TRANSIENT)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(5.0)


def test_an_ignored_probe_result_frees_its_probe_slot():
    clock = FakeClock()
    breaker = CircuitBreaker(CONFIG, clock)
    for _ in range(10):
        breaker.record_failure()
    clock.advance(5.0)
    breaker.try_acquire()
    breaker.try_acquire()
    breaker.record(ErrorClass.THROTTLE)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.try_acquire() == 0.0
