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
def test_pair_limiter_allows_at_most_burst_per_burst_intervals(times, burst):
    limiter = PairLimiter(2.0, burst)
    allowed = [now for now in times if limiter.allow("+5511999990001", now)]
    for start in allowed:
        assert sum(1 for t in allowed if start <= t < start + burst * 2.0) <= burst


@given(st.lists(st.tuples(st.floats(0, 30, allow_nan=False), st.integers(0, 8)), max_size=100))
def test_unique_window_counts_recipients_with_a_send_in_the_window(events):
    window = UniqueRecipientWindow(50.0)
    now, sends = 0.0, []
    for gap, recipient in events:
        now += gap
        window.add(str(recipient), now)
        sends.append((now, str(recipient)))
        assert window.unique(now) == len({r for t, r in sends if t > now - 50.0})
