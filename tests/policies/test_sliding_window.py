from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.policies.sliding_window import SlidingWindowLimiter
from tests.clock import FakeClock

gaps = st.lists(st.floats(min_value=0, max_value=0.3, allow_nan=False), min_size=1, max_size=300)


@given(limit=st.integers(1, 50), window=st.floats(0.1, 2.0), gaps=gaps)
def test_no_window_ever_holds_more_than_the_limit(limit, window, gaps):
    clock = FakeClock()
    limiter = SlidingWindowLimiter(limit, window, clock)
    sent: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        if limiter.wait_time() == 0.0:
            limiter.record()
            sent.append(clock.now)
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t < start + window) <= limit


@given(limit=st.integers(1, 50), window=st.floats(0.1, 2.0), gaps=gaps)
def test_waiting_as_told_always_fits_one_more(limit, window, gaps):
    clock = FakeClock()
    limiter = SlidingWindowLimiter(limit, window, clock)
    for gap in gaps:
        clock.advance(gap)
        wait = limiter.wait_time()
        if wait > 0:
            clock.advance(wait)
            assert limiter.wait_time() == 0.0
        limiter.record()


def test_a_lower_limit_applies_to_the_window_as_it_stands():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(5, 1.0, clock)
    for _ in range(5):
        limiter.record()
    limiter.set_limit(2)
    assert limiter.wait_time() == pytest.approx(1.0)
    clock.advance(1.0)
    assert limiter.count() == 0
    with pytest.raises(ValueError, match="limit"):
        limiter.set_limit(0)
