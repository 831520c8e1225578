from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.policies.messaging_limit import MessagingLimitGate
from tests.clock import FakeClock

WINDOW = 100.0

batches = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=60, allow_nan=False),
        st.lists(
            st.integers(min_value=0, max_value=30).map(lambda i: f"+55119{i:08d}"), max_size=12
        ),
    ),
    max_size=40,
)


def _max_unique_in_any_window(sends: list[tuple[float, str]]) -> int:
    """Meta's count: unique recipients with a send in any half-open window of WINDOW."""
    worst = 0
    for start, _ in sends:
        inside = {r for t, r in sends if start <= t < start + WINDOW}
        worst = max(worst, len(inside))
    return worst


@given(limit=st.integers(min_value=0, max_value=10), batches=batches)
def test_no_window_ever_admits_more_unique_recipients_than_the_limit(limit, batches):
    clock = FakeClock()
    gate = MessagingLimitGate(limit, window_s=WINDOW, clock=clock)
    sends: list[tuple[float, str]] = []
    for gap, batch in batches:
        clock.advance(gap)
        reservation = gate.reserve(batch)
        sends.extend((clock.now, r) for r in reservation.admitted)
        assert sorted(reservation.admitted + reservation.deferred) == sorted(batch)
    assert _max_unique_in_any_window(sends) <= limit


@given(limit=st.integers(min_value=1, max_value=10), batches=batches)
def test_only_a_full_window_defers_and_it_says_when_a_slot_frees(limit, batches):
    clock = FakeClock()
    gate = MessagingLimitGate(limit, window_s=WINDOW, clock=clock)
    for gap, batch in batches:
        clock.advance(gap)
        reservation = gate.reserve(batch)
        if reservation.deferred:
            assert gate.used() == limit
            assert clock.now < reservation.next_slot_at <= clock.now + WINDOW
            clock.now = reservation.next_slot_at
            assert gate.used() < limit
        else:
            assert reservation.next_slot_at is None


@given(limit=st.integers(min_value=0, max_value=10), batches=batches, cut=st.integers(0, 39))
def test_a_gate_rebuilt_from_history_decides_like_the_original(limit, batches, cut):
    clock = FakeClock()
    original = MessagingLimitGate(limit, window_s=WINDOW, clock=clock)
    history: list[tuple[str, float]] = []
    for gap, batch in batches[:cut]:
        clock.advance(gap)
        history.extend((r, clock.now) for r in original.reserve(batch).admitted)
    rebuilt = MessagingLimitGate.from_history(limit, reversed(history), WINDOW, clock)
    for gap, batch in batches[cut:]:
        clock.advance(gap)
        assert rebuilt.reserve(batch) == original.reserve(batch)


def test_a_recipient_already_counted_passes_freely():
    gate = MessagingLimitGate(2, window_s=WINDOW, clock=FakeClock())
    first = gate.reserve(["a", "b"])
    assert first.new == ["a", "b"]
    again = gate.reserve(["b", "a", "c"])
    assert again.admitted == ["b", "a"]
    assert again.new == []
    assert again.deferred == ["c"]


def test_the_window_moves_it_is_not_a_calendar_day():
    clock = FakeClock()
    gate = MessagingLimitGate(2, window_s=WINDOW, clock=clock)
    gate.reserve(["a"])
    clock.advance(60)
    gate.reserve(["b"])
    clock.advance(39)
    assert gate.reserve(["c"]).deferred == ["c"]  # a and b both within the last 100 s
    clock.advance(1)
    assert gate.reserve(["c"]).admitted == ["c"]  # a left the window, b has not
    assert gate.reserve(["d"]).deferred == ["d"]


def test_a_resend_keeps_the_slot_a_full_window_from_the_last_send():
    clock = FakeClock()
    gate = MessagingLimitGate(1, window_s=WINDOW, clock=clock)
    gate.reserve(["a"])
    clock.advance(90)
    gate.record_sent("a")  # the send went out late; Meta counts a until 190
    clock.advance(50)
    assert gate.reserve(["b"]).deferred == ["b"]
    clock.advance(50)
    assert gate.reserve(["b"]).admitted == ["b"]


def test_release_gives_back_unsent_new_slots():
    gate = MessagingLimitGate(2, window_s=WINDOW, clock=FakeClock())
    reservation = gate.reserve(["a", "b"])
    gate.release(reservation.new[1:])
    assert gate.remaining() == 1
    assert gate.reserve(["c"]).admitted == ["c"]


def test_unlimited_admits_everyone_and_tracks_nobody():
    gate = MessagingLimitGate(None, window_s=WINDOW, clock=FakeClock())
    reservation = gate.reserve([f"r{i}" for i in range(10_000)])
    assert len(reservation.admitted) == 10_000
    assert gate.remaining() is None
    assert gate.used() == 0


def test_a_lower_limit_holds_new_recipients_until_the_window_drains():
    clock = FakeClock()
    gate = MessagingLimitGate(5, window_s=WINDOW, clock=clock)
    gate.reserve(["a", "b", "c"])
    gate.set_limit(2)
    assert gate.reserve(["d"]).deferred == ["d"]
    assert gate.reserve(["a"]).admitted == ["a"]
    with pytest.raises(ValueError, match="limit"):
        gate.set_limit(-1)


# -- resync: slots of sends Meta never accepted are given back ---------------------------


def test_resync_frees_the_slots_of_sends_meta_never_accepted():
    clock = FakeClock()
    gate = MessagingLimitGate(2, window_s=WINDOW, clock=clock)
    assert gate.reserve(["a", "b"]).admitted == ["a", "b"]
    assert gate.reserve(["c"]).deferred == ["c"]
    clock.advance(5)
    # "a" was accepted by Meta; "b" failed before acceptance (or was requeued, rerouted...).
    freed = gate.resync(["a"], as_of=clock.now)
    assert freed == 1
    assert gate.used() == 1
    assert gate.reserve(["c"]).admitted == ["c"]
    # "a" keeps its slot, and its time: a full window after its reservation.
    clock.advance(WINDOW - 5.5)
    assert gate.used() == 2
    clock.advance(1)
    assert gate.used() == 1


def test_resync_keeps_reservations_made_after_the_truth_was_read():
    clock = FakeClock()
    gate = MessagingLimitGate(3, window_s=WINDOW, clock=clock)
    as_of = clock.now
    clock.advance(1)
    gate.reserve(["late"])  # routed while the truth was being read
    assert gate.resync([], as_of=as_of) == 0
    assert gate.used() == 1
    clock.advance(1)
    assert gate.resync([], as_of=clock.now) == 1
    assert gate.used() == 0


def test_resync_of_an_unlimited_gate_tracks_nobody():
    gate = MessagingLimitGate(None, window_s=WINDOW, clock=FakeClock())
    assert gate.resync(["a"], as_of=1_000.0) == 0
    assert gate.used() == 0


@given(
    limit=st.integers(min_value=1, max_value=10),
    batches=batches,
    holding=st.sets(st.integers(min_value=0, max_value=30).map(lambda i: f"+55119{i:08d}")),
)
def test_resync_frees_exactly_the_reservations_nobody_holds(limit, batches, holding):
    clock = FakeClock()
    gate = MessagingLimitGate(limit, window_s=WINDOW, clock=clock)
    last: dict[str, float] = {}
    for gap, batch in batches:
        clock.advance(gap)
        for recipient in gate.reserve(batch).admitted:
            last[recipient] = clock.now
    alive = {r for r, t in last.items() if t + WINDOW > clock.now}
    before = gate.used()
    freed = gate.resync(holding, as_of=clock.now + 1e-9)
    assert gate.used() == len(alive & holding) == before - freed
    assert gate.remaining() == limit - len(alive & holding)
    # Freed slots are usable at once.
    newcomers = [f"new-{i}" for i in range(limit)]
    assert len(gate.reserve(newcomers).admitted) == limit - len(alive & holding)
