from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.policies.backoff import Backoff

params = st.tuples(
    st.floats(min_value=0.01, max_value=5), st.floats(min_value=1, max_value=100)
).map(lambda pair: (pair[0], max(pair)))


@given(params=params, max_attempts=st.integers(1, 20), seed=st.integers(0, 2**32))
def test_delays_stay_in_bounds_and_attempts_run_out(params, max_attempts, seed):
    base, cap = params
    backoff = Backoff(base, cap, max_attempts, random.Random(seed))
    previous = None
    attempts = 1
    while (delay := backoff.next_delay(attempts, previous)) is not None:
        assert base <= delay <= cap
        assert delay <= max(base, 3 * (previous or base)) + 1e-9
        previous = delay
        attempts += 1
    assert attempts == max_attempts


def test_jitter_spreads_retries_of_messages_failed_together():
    backoff = Backoff(0.5, 60, 6, random.Random(7))
    delays = {round(backoff.next_delay(1, 4.0), 6) for _ in range(100)}
    assert len(delays) > 90
    assert min(delays) >= 0.5
    assert max(delays) <= 12.0


def test_delays_grow_on_average():
    backoff = Backoff(0.5, 1_000, 50, random.Random(3))
    means = []
    for attempts in range(1, 6):
        total, previous = 0.0, None
        for _ in range(2_000):
            previous = None
            for step in range(1, attempts + 1):
                previous = backoff.next_delay(step, previous)
            total += previous
        means.append(total / 2_000)
    assert means == sorted(means)


@pytest.mark.parametrize(("base", "cap", "attempts"), [(0, 1, 3), (2, 1, 3), (1, 2, 0)])
def test_bad_parameters_are_refused(base, cap, attempts):
    with pytest.raises(ValueError, match=r"need|max_attempts"):
        Backoff(base, cap, attempts)
