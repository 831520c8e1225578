"""The composed pacing of one number, on a fake clock: never faster than the limit in any
one-second window, yet within 1 % of it for a caller that is a little late."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.engine.pacing import Pacer, Wait
from dispatcher.meta.error_codes import ErrorClass, Throttle
from dispatcher.policies.circuit_breaker import CircuitBreakerConfig
from tests.clock import FakeClock


def _run(limit: float, seconds: float, lateness_s: float, seed: int) -> list[float]:
    clock = FakeClock(0.0)
    pacer = Pacer(limit, clock=clock)
    rng = random.Random(seed)
    sends: list[float] = []
    i = 0
    while clock.now < seconds:
        address = f"+55119{i:08d}"
        wait, delay = pacer.next_wait(address)
        if wait is Wait.NONE:
            assert pacer.admit(address)
            sends.append(clock.now)
            i += 1
        else:
            clock.advance(delay + rng.uniform(0, lateness_s))
    return sends


def _max_in_one_second(sends: list[float]) -> int:
    worst, start = 0, 0
    for end, t in enumerate(sends):
        while sends[start] <= t - 1.0:
            start += 1
        worst = max(worst, end - start + 1)
    return worst


@settings(max_examples=30, deadline=None)
@given(limit=st.sampled_from([1, 20, 80, 250, 1000]), seed=st.integers(0, 1000))
def test_never_more_than_the_limit_in_any_second_and_within_one_percent(limit, seed):
    sends = _run(limit, 20.0, lateness_s=0.001, seed=seed)
    assert _max_in_one_second(sends) <= limit
    achieved = len(sends) / 20.0
    assert achieved >= 0.99 * limit - 1 / 20.0


def test_a_recipient_hit_recently_waits_for_the_pair_interval_first():
    clock = FakeClock()
    pacer = Pacer(1000, clock=clock)
    assert pacer.next_wait("+5511999990001") == (Wait.NONE, 0.0)
    assert pacer.admit("+5511999990001")
    wait, seconds = pacer.next_wait("+5511999990001")
    assert wait is Wait.PAIR
    assert seconds == 6.0


def test_throttles_cut_the_rate_and_pair_throttles_delay_the_recipient():
    clock = FakeClock()
    pacer = Pacer(80, clock=clock)
    before = pacer.current_rate()
    pacer.on_result(ErrorClass.THROTTLE, Throttle.THROUGHPUT, "+5511999990001")
    assert pacer.current_rate() == pytest.approx(before * pacer.config.adaptive.decrease_factor)
    assert pacer.window.limit == int(80 * pacer.config.adaptive.decrease_factor)
    pacer.on_result(ErrorClass.THROTTLE, Throttle.PAIR, "+5511999990002")
    assert pacer.next_wait("+5511999990002")[0] is Wait.PAIR


def test_an_open_breaker_holds_everything():
    clock = FakeClock()
    pacer = Pacer(80, clock=clock)
    for _ in range(CircuitBreakerConfig().min_volume):
        pacer.on_result(ErrorClass.TRANSIENT, None, "+5511999990003")
    wait, seconds = pacer.next_wait("+5511999990004")
    assert wait is Wait.BREAKER
    assert seconds > 0


def test_a_replacing_sender_waits_one_window_for_its_predecessors_sends() -> None:
    # The process it replaced may have sent the limit in the second before: Meta counts them.
    clock = FakeClock(0.0)
    pacer = Pacer(80, clock=clock)
    pacer.assume_window_used()
    wait, delay = pacer.next_wait("+5511900000001")
    assert wait is Wait.RATE
    assert 1.0 <= delay <= 1.0 + pacer.config.jitter_margin_s + 1e-9
    clock.advance(delay)
    assert pacer.next_wait("+5511900000001")[0] is Wait.NONE
