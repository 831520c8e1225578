"""Send windows at fixed instants: open or not, the next opening, DST days, midnight."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.windows import Schedule, SendWindow, local_instant
from dispatcher.zones import recipient_zones

NEW_YORK = ZoneInfo("America/New_York")
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")
EVERY_DAY = frozenset(range(7))
WEEKDAYS = frozenset(range(5))
OFFICE = Schedule(WEEKDAYS, time(9), time(18))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_open_inside_the_hours_of_an_allowed_day() -> None:
    # Tuesday 2026-03-03, 10:00 in São Paulo (UTC-3).
    assert OFFICE.is_open(at("2026-03-03T10:00:00-03:00"), SAO_PAULO)
    assert OFFICE.is_open(at("2026-03-03T09:00:00-03:00"), SAO_PAULO)  # start included
    assert not OFFICE.is_open(at("2026-03-03T18:00:00-03:00"), SAO_PAULO)  # end excluded
    assert not OFFICE.is_open(at("2026-03-03T08:59:59-03:00"), SAO_PAULO)


def test_the_same_instant_is_open_in_one_zone_and_closed_in_another() -> None:
    instant = at("2026-03-03T13:00:00Z")  # 10:00 São Paulo, 22:00 Tokyo
    assert OFFICE.is_open(instant, SAO_PAULO)
    assert not OFFICE.is_open(instant, TOKYO)
    assert OFFICE.next_opening(instant, TOKYO) == at("2026-03-04T09:00:00+09:00")


def test_next_opening_skips_days_not_allowed() -> None:
    friday_evening = at("2026-03-06T19:00:00-03:00")
    assert OFFICE.next_opening(friday_evening, SAO_PAULO) == at("2026-03-09T09:00:00-03:00")
    saturday = at("2026-03-07T10:00:00-03:00")
    assert not OFFICE.is_open(saturday, SAO_PAULO)


def test_next_opening_is_the_instant_itself_when_open() -> None:
    instant = at("2026-03-03T12:34:56-03:00")
    assert OFFICE.next_opening(instant, SAO_PAULO) == instant


def test_seconds_resolution() -> None:
    window = Schedule(EVERY_DAY, time(10, 0, 30), time(11))
    assert not window.is_open(at("2026-03-03T10:00:29Z"), ZoneInfo("UTC"))
    assert window.is_open(at("2026-03-03T10:00:30Z"), ZoneInfo("UTC"))


def test_a_window_crossing_midnight_belongs_to_the_day_it_opens() -> None:
    # Friday only, 22:00-06:00: open Friday night into Saturday morning, not Thursday night.
    nights = Schedule(frozenset({4}), time(22), time(6))
    assert nights.crosses_midnight
    assert nights.is_open(at("2026-03-06T23:00:00+01:00"), BERLIN)  # Friday 23:00
    assert nights.is_open(at("2026-03-07T05:59:00+01:00"), BERLIN)  # Saturday 05:59
    assert not nights.is_open(at("2026-03-07T06:00:00+01:00"), BERLIN)
    assert not nights.is_open(at("2026-03-06T03:00:00+01:00"), BERLIN)  # Friday 03:00
    assert nights.next_opening(at("2026-03-07T07:00:00+01:00"), BERLIN) == at(
        "2026-03-13T22:00:00+01:00"
    )


def test_a_whole_day_window_without_hours() -> None:
    weekends = Schedule(frozenset({5, 6}))
    assert weekends.is_open(at("2026-03-07T00:00:00+01:00"), BERLIN)
    assert weekends.is_open(at("2026-03-08T23:59:59+01:00"), BERLIN)
    assert not weekends.is_open(at("2026-03-09T00:00:00+01:00"), BERLIN)


def test_spring_forward_an_opening_the_clock_skips_is_taken_at_the_jump() -> None:
    # New York, Sunday 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
    early = Schedule(EVERY_DAY, time(2, 30), time(5))
    assert local_instant(datetime(2026, 3, 8).date(), time(2, 30), NEW_YORK) == at(
        "2026-03-08T07:00:00Z"
    )
    assert early.next_opening(at("2026-03-08T06:00:00Z"), NEW_YORK) == at("2026-03-08T07:00:00Z")
    assert early.is_open(at("2026-03-08T03:00:00-04:00"), NEW_YORK)
    # It closes at 05:00 EDT: the window is half an hour shorter that night.
    assert not early.is_open(at("2026-03-08T05:00:00-04:00"), NEW_YORK)


def test_spring_forward_a_window_inside_the_jump_does_not_open_that_day() -> None:
    swallowed = Schedule(EVERY_DAY, time(2, 0), time(2, 30))
    assert swallowed.next_opening(at("2026-03-08T05:00:00Z"), NEW_YORK) == at(
        "2026-03-09T02:00:00-04:00"
    )


def test_fall_back_a_time_shown_twice_opens_at_its_first_showing() -> None:
    # New York, Sunday 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
    window = Schedule(EVERY_DAY, time(1, 30), time(3))
    first = at("2026-11-01T01:30:00-04:00")
    assert window.next_opening(at("2026-11-01T04:00:00Z"), NEW_YORK) == first
    # Open through the repeated hour (the clock goes back to 01:00: still open), closed at
    # 03:00 EST: two and a half hours that night.
    assert window.is_open(at("2026-11-01T01:10:00-05:00"), NEW_YORK)
    assert window.is_open(at("2026-11-01T02:59:00-05:00"), NEW_YORK)
    assert not window.is_open(at("2026-11-01T03:00:00-05:00"), NEW_YORK)


def test_office_hours_keep_local_time_across_a_dst_change() -> None:
    # Berlin goes to summer time on 2026-03-29: 09:00 local is 08:00 UTC, then 07:00 UTC.
    friday = at("2026-03-27T18:30:00+01:00")
    assert OFFICE.next_opening(friday, BERLIN) == at("2026-03-30T07:00:00Z")
    assert OFFICE.next_opening(at("2026-03-26T19:00:00+01:00"), BERLIN) == at(
        "2026-03-27T08:00:00Z"
    )


def test_in_all_zones_it_opens_when_the_last_of_them_opens() -> None:
    window = Schedule(EVERY_DAY, time(9), time(21))
    zones = [SAO_PAULO, BERLIN]  # Berlin is 4 h ahead in March
    opening = window.next_opening_in_all(at("2026-03-03T00:00:00Z"), zones)
    assert opening == at("2026-03-03T09:00:00-03:00")  # São Paulo opens last
    assert all(window.is_open(opening, zone) for zone in zones)
    # Closed once the first closes: 21:00 Berlin is 17:00 São Paulo.
    later = window.next_opening_in_all(at("2026-03-03T20:30:00Z"), zones)
    assert later == at("2026-03-04T09:00:00-03:00")


def test_in_zones_that_never_share_an_open_hour_there_is_no_opening() -> None:
    window = Schedule(EVERY_DAY, time(9), time(12))
    assert window.next_opening_in_all(at("2026-03-03T00:00:00Z"), [SAO_PAULO, TOKYO]) is None


def test_a_recipient_in_zones_without_a_shared_hour_takes_the_campaign_zone() -> None:
    window = SendWindow(Schedule(EVERY_DAY, time(9), time(12)), BERLIN, per_recipient=True)
    instant = at("2026-03-03T00:00:00Z")
    assert window.opening_for(instant, (SAO_PAULO, TOKYO)) == at("2026-03-03T09:00:00+01:00")
    assert window.opening_for(instant, ()) == at("2026-03-03T09:00:00+01:00")
    assert window.opening_for(instant, (TOKYO,)) == instant  # 09:00 in Tokyo


def test_a_moscow_mobile_is_not_messaged_at_night_whatever_the_campaign_zone() -> None:
    """+7 916 may be in any of Russia's 16 zones: they never share 09:00-18:00, so Moscow's
    (most of Russia's people) decides, not the campaign's zone (New York: 17:00 there)."""
    moscow = ZoneInfo("Europe/Moscow")
    window = SendWindow(Schedule(EVERY_DAY, time(9), time(18)), NEW_YORK, per_recipient=True)
    zones, main = recipient_zones("+79161234567")
    night = at("2026-03-03T01:00:00+03:00")
    assert window.next_opening(night) == night  # open in the campaign's zone
    assert window.opening_for(night, zones, main) == at("2026-03-03T09:00:00+03:00")
    morning = at("2026-03-03T10:00:00+03:00")
    assert window.opening_for(morning, zones, main) == morning
    assert window.schedule.is_open(morning, moscow)


def test_from_the_stored_shape() -> None:
    window = SendWindow.from_json(
        {
            "days": ["mon", "fri"],
            "start": "22:00:00",
            "end": "06:00:00",
            "timezone": "recipient",
            "fallback_timezone": "Europe/Berlin",
        }
    )
    assert window.per_recipient
    assert window.zone == BERLIN
    assert window.schedule == Schedule(frozenset({0, 4}), time(22), time(6))


@pytest.mark.parametrize(
    ("days", "start", "end"),
    [(frozenset(), None, None), (WEEKDAYS, time(9), None), (WEEKDAYS, time(9), time(9))],
)
def test_invalid_schedules_are_refused(
    days: frozenset[int], start: time | None, end: time | None
) -> None:
    with pytest.raises(ValueError, match=r"days|start|differ"):
        Schedule(days, start, end)


zones = st.sampled_from([NEW_YORK, SAO_PAULO, BERLIN, TOKYO, ZoneInfo("Australia/Lord_Howe")])
instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
clock_times = st.times().map(lambda t: t.replace(microsecond=0))


@given(
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=clock_times,
    length_s=st.integers(1, 86_399),
    zone=zones,
    instant=instants,
)
def test_the_next_opening_is_open_and_nothing_before_it_is(
    days: frozenset[int], start: time, length_s: int, zone: ZoneInfo, instant: datetime
) -> None:
    end = (datetime.combine(datetime(2026, 1, 1), start) + timedelta(seconds=length_s)).time()
    if end == start:
        return
    window = Schedule(days, start, end)
    opening = window.next_opening(instant, zone)
    if opening is None:  # only when DST swallows every allowed day: never with these zones
        raise AssertionError("no opening within a week")
    assert opening >= instant
    assert window.is_open(opening, zone)
    if opening > instant:
        assert not window.is_open(opening - timedelta(seconds=1), zone)
        assert not window.is_open(instant, zone)
