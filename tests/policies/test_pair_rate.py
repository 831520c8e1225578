from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.policies.pair_rate import PairRateGuard
from dispatcher.sandbox.limits import PairLimiter
from tests.clock import FakeClock

EPS = 1e-6

attempts = st.lists(
    st.tuples(st.floats(min_value=0, max_value=4, allow_nan=False), st.sampled_from("abcde")),
    max_size=200,
)


@given(
    interval=st.floats(min_value=0.5, max_value=10),
    burst=st.integers(min_value=1, max_value=4),
    attempts=attempts,
)
def test_no_recipient_gets_more_than_burst_plus_t_over_interval(interval, burst, attempts):
    clock = FakeClock()
    guard = PairRateGuard(interval, burst, clock)
    sent: dict[str, list[float]] = defaultdict(list)
    for gap, recipient in attempts:
        clock.advance(gap)
        if guard.try_acquire(recipient) == 0.0:
            sent[recipient].append(clock.now)
    for times in sent.values():
        for i, start in enumerate(times):
            for j in range(i, len(times)):
                assert (j - i + 1) <= burst + (times[j] - start) / interval + EPS


@given(interval=st.floats(min_value=0.5, max_value=10), attempts=attempts)
def test_waiting_as_told_always_gets_through(interval, attempts):
    clock = FakeClock()
    guard = PairRateGuard(interval, 1, clock)
    for gap, recipient in attempts:
        clock.advance(gap)
        wait = guard.try_acquire(recipient)
        assert wait == pytest.approx(guard.wait_time(recipient)) or wait == 0.0
        if wait > 0:
            clock.advance(wait)
            assert guard.try_acquire(recipient) == 0.0


def test_other_recipients_are_not_held_back():
    guard = PairRateGuard(6.0, 1, FakeClock())
    assert guard.try_acquire("+5511999990001") == 0.0
    assert guard.try_acquire("+5511999990001") == pytest.approx(6.0)
    assert guard.try_acquire("+5511999990002") == 0.0


def test_penalty_holds_the_recipient_for_the_delay():
    clock = FakeClock()
    guard = PairRateGuard(6.0, 2, clock)
    guard.penalize("+5511999990001", delay_s=30)
    clock.advance(29.9)
    assert guard.try_acquire("+5511999990001") > 0
    clock.advance(0.1)
    assert guard.try_acquire("+5511999990001") == 0.0


def test_memory_is_bounded_by_recently_active_recipients():
    clock = FakeClock()
    guard = PairRateGuard(6.0, 1, clock)
    for i in range(100_000):
        guard.try_acquire(f"r{i}")
        clock.advance(0.01)  # 100 new recipients a second, 600 alive at any time
    assert len(guard) < 4 * 1024


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="interval_s"):
        PairRateGuard(0)
    with pytest.raises(ValueError, match="burst"):
        PairRateGuard(6, 0)


def test_a_refunded_send_frees_the_recipient_again():
    clock = FakeClock()
    guard = PairRateGuard(6.0, 1, clock)
    assert guard.try_acquire("+5511999990001") == 0.0
    clock.advance(1.0)
    guard.refund("+5511999990001")
    assert guard.try_acquire("+5511999990001") == 0.0
    assert guard.try_acquire("+5511999990001") == pytest.approx(6.0)


@given(
    burst=st.integers(min_value=1, max_value=45),
    attempts=st.lists(
        st.tuples(st.floats(min_value=0, max_value=8, allow_nan=False), st.sampled_from("ab")),
        max_size=300,
    ),
)
def test_the_guard_never_trips_metas_pair_limit_as_the_sandbox_judges_it(burst, attempts):
    """Meta allows a burst of up to 45 to one customer within 6 s, borrowing 6 s each: a
    guard of any burst up to 45, sending whenever it says so, never meets a 131056."""
    clock = FakeClock()
    guard = PairRateGuard(6.0, burst, clock)
    meta = PairLimiter(6.0, 45)
    for gap, recipient in attempts:
        clock.advance(gap)
        wait = guard.try_acquire(recipient)
        if wait > 0:
            clock.advance(wait)
            assert guard.try_acquire(recipient) == 0.0
        assert meta.allow(recipient, clock.now)


def test_after_a_burst_the_guard_waits_until_the_borrowing_is_repaid():
    clock = FakeClock()
    guard = PairRateGuard(6.0, 20, clock)
    assert all(guard.try_acquire("+5511999990001") == 0.0 for _ in range(20))
    assert guard.try_acquire("+5511999990001") == pytest.approx(120.0)
    clock.advance(7.0)
    assert guard.try_acquire("+5511999990001") == pytest.approx(113.0)
    clock.advance(113.0)
    assert guard.try_acquire("+5511999990001") == 0.0
