"""A campaign's start: zone required, not past (but for clock skew), within a year, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.scheduling import MAX_SCHEDULE_AHEAD, SCHEDULE_SKEW, schedule_start

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_a_start_in_another_zone_is_kept_in_utc() -> None:
    at = datetime(2026, 11, 27, 9, 0, tzinfo=timezone(timedelta(hours=-3)))
    start = schedule_start(at, NOW)
    assert start == at
    assert start.utcoffset() == timedelta(0)
    assert start.hour == 12


@pytest.mark.parametrize(
    ("at", "why"),
    [
        (datetime(2026, 11, 27, 9, 0), "time zone"),
        (NOW - SCHEDULE_SKEW - timedelta(seconds=1), "in the past"),
        (NOW + MAX_SCHEDULE_AHEAD + timedelta(seconds=1), "days ahead"),
        (datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))), "out of range"),
        (datetime(9999, 12, 31, tzinfo=UTC), "days ahead"),
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), "out of range"),
    ],
)
def test_refused(at: datetime, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        schedule_start(at, NOW)


def test_the_edges_are_taken() -> None:
    assert schedule_start(NOW - SCHEDULE_SKEW, NOW) == NOW - SCHEDULE_SKEW
    assert schedule_start(NOW + MAX_SCHEDULE_AHEAD, NOW) == NOW + MAX_SCHEDULE_AHEAD


@given(
    st.datetimes(timezones=st.timezones()),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_any_aware_time_is_a_utc_start_in_the_window_or_a_value_error(
    at: datetime, now_naive: datetime
) -> None:
    now = now_naive.replace(tzinfo=UTC)
    try:
        start = schedule_start(at, now)
    except ValueError:
        return
    assert start.tzinfo is UTC
    assert start == at
    assert now - SCHEDULE_SKEW <= start <= now + MAX_SCHEDULE_AHEAD
