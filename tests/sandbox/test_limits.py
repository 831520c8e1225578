"""The sandbox's own limit algorithms: the judge of the dispatcher must be right itself."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.sandbox.limits import PairLimiter, SlidingWindowCounter, UniqueRecipientWindow

times = st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), max_size=200).map(
    lambda gaps: [sum(gaps[: i + 1]) for i in range(len(gaps))]
)


@given(times)
def test_window_count_and_peak_match_a_brute_force_count(times):
    counter = SlidingWindowCounter(1.0)
    for i, now in enumerate(times):
        counter.add(now)
        assert counter.count(now) == sum(1 for t in times[: i + 1] if t > now - 1.0)
    # The busiest window ends at an event: count (end - 1, end] the way the counter does.
    brute = max((sum(1 for t in times if end - 1.0 < t <= end) for end in times), default=0)
    assert counter.peak == brute


@given(times, st.integers(1, 4))
def test_pair_limiter_never_allows_more_than_burst_plus_the_time_paid_back(times, burst):
    limiter = PairLimiter(2.0, burst)
    allowed = [now for now in times if limiter.allow("+5511999990001", now)]
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            assert j - i + 1 <= burst + (allowed[j] - start) / 2.0 + 1e-9


def test_one_message_every_6_s_is_always_allowed():
    limiter = PairLimiter(6.0, 45)
    assert all(limiter.allow("+5511999990001", 6.0 * i) for i in range(100))


def test_a_burst_of_up_to_45_within_6_s_is_tolerated_and_the_46th_refused():
    limiter = PairLimiter(6.0, 45)
    assert all(limiter.allow("+5511999990001", 1000.0 + i * 0.1) for i in range(45))
    assert not limiter.allow("+5511999990001", 1004.6)
    assert limiter.allow("+5511999990002", 1004.6)  # another customer is not concerned


def test_a_burst_of_20_borrows_two_minutes_from_the_future():
    limiter = PairLimiter(6.0, 45)
    assert all(limiter.allow("+5511999990001", 0.0) for _ in range(20))
    # The burst's window (6 s) is over: nothing more until its 20 x 6 s are paid back.
    for now in (6.0, 30.0, 60.0, 119.9):
        assert not limiter.allow("+5511999990001", now)
    assert limiter.allow("+5511999990001", 120.0)


def test_a_burst_must_fit_in_one_interval():
    limiter = PairLimiter(6.0, 45)
    assert limiter.allow("+5511999990001", 0.0)
    assert limiter.allow("+5511999990001", 5.9)
    assert not limiter.allow("+5511999990001", 6.5)  # the window is over, 12 s owed
    assert limiter.allow("+5511999990001", 12.0)


@given(st.lists(st.tuples(st.floats(0, 30, allow_nan=False), st.integers(0, 8)), max_size=100))
def test_unique_window_counts_recipients_with_a_send_in_the_window(events):
    window = UniqueRecipientWindow(50.0)
    now, sends = 0.0, []
    for gap, recipient in events:
        now += gap
        window.add(str(recipient), now)
        sends.append((now, str(recipient)))
        assert window.unique(now) == len({r for t, r in sends if t > now - 50.0})
