from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.policies.token_bucket import TokenBucket
from tests.clock import FakeClock

EPS = 1e-6

gaps = st.lists(st.floats(min_value=0, max_value=0.5, allow_nan=False), min_size=1, max_size=300)
rates = st.floats(min_value=0.5, max_value=2_000, allow_nan=False)
bursts = st.integers(min_value=1, max_value=50)


def _admit_times(bucket: TokenBucket, clock: FakeClock, gaps: list[float]) -> list[float]:
    admitted = []
    for gap in gaps:
        clock.advance(gap)
        if bucket.try_acquire() == 0.0:
            admitted.append(clock.now)
    return admitted


def _max_in_window(times: list[float], rate: float) -> float:
    """The largest excess of admissions over ``rate * t`` across every window."""
    worst = 0.0
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            worst = max(worst, (j - i + 1) - rate * (times[j] - start))
    return worst


@given(rate=rates, burst=bursts, gaps=gaps)
def test_no_window_admits_more_than_rate_times_t_plus_burst(rate, burst, gaps):
    clock = FakeClock()
    bucket = TokenBucket(rate, burst, clock)
    admitted = _admit_times(bucket, clock, gaps)
    assert _max_in_window(admitted, rate) <= burst + EPS


@given(rate=rates, burst=bursts, gaps=gaps)
def test_a_caller_that_waits_as_told_is_admitted_at_the_rate(rate, burst, gaps):
    """Not too strict either: sleeping exactly the answer always yields a token."""
    clock = FakeClock()
    bucket = TokenBucket(rate, burst, clock)
    for gap in gaps:
        clock.advance(gap)
        wait = bucket.try_acquire()
        if wait > 0:
            clock.advance(wait)
            assert bucket.try_acquire() == 0.0


@given(
    first=rates,
    second=rates,
    burst=bursts,
    before=gaps,
    after=gaps,
)
def test_rate_change_applies_from_now_on(first, second, burst, before, after):
    clock = FakeClock()
    bucket = TokenBucket(first, burst, clock)
    early = _admit_times(bucket, clock, before)
    changed_at = clock.now
    bucket.set_rate(second)
    late = _admit_times(bucket, clock, after)
    # Every window obeys the faster of the two rates...
    assert _max_in_window(early + late, max(first, second)) <= burst + EPS
    # ...and after the change only the new one.
    assert _max_in_window(late, second) <= burst + EPS
    assert all(t >= changed_at for t in late)


def test_full_bucket_allows_burst_then_waits_one_interval():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock)
    assert [bucket.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_acquire() == pytest.approx(0.1)
    clock.advance(0.1)
    assert bucket.try_acquire() == 0.0


def test_zero_rate_waits_forever_and_refill_is_capped_at_burst():
    clock = FakeClock()
    bucket = TokenBucket(rate=0, burst=2, clock=clock)
    bucket.try_acquire()
    bucket.try_acquire()
    assert math.isinf(bucket.try_acquire())
    bucket.set_rate(5)
    clock.advance(100)
    assert bucket.tokens() == 2


@pytest.mark.parametrize(("rate", "burst"), [(-1, 1), (math.inf, 1), (math.nan, 1), (1, 0.5)])
def test_bad_parameters_are_refused(rate, burst):
    with pytest.raises(ValueError, match="must be"):
        TokenBucket(rate, burst)


@given(first=rates, second=rates, burst=bursts, before=gaps, after=gaps)
def test_reconfigure_applies_rate_and_burst_from_now_on(first, second, burst, before, after):
    clock = FakeClock()
    bucket = TokenBucket(first, burst, clock)
    _admit_times(bucket, clock, before)
    new_burst = max(1, burst // 2)
    bucket.reconfigure(second, new_burst)
    assert bucket.tokens() <= new_burst
    late = _admit_times(bucket, clock, after)
    assert _max_in_window(late, second) <= new_burst + EPS
