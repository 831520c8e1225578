"""Send windows: the days and hours a campaign may send, as a clock on the wall shows them.

Pure (no I/O; every instant is given): the coordinator asks whether a window is open at an
instant and, when it is not, when it opens next.

A window is a weekly schedule of local times. On each allowed day it opens at ``start`` and
closes at ``end``; an ``end`` before ``start`` crosses midnight (a Friday 22:00-06:00 window
closes on Saturday morning: the day named is the day it opens). Without hours it is the
whole of each allowed day. Times have second resolution (``09:00`` or ``09:00:30``).

Daylight saving time: a time the clock skips (02:30 on a spring-forward night) is taken at
the jump (03:00 local, the first instant the clock shows a later time); a time the clock
shows twice (01:30 on a fall-back night) at its first showing. A window the jump swallows
whole (02:00-02:30 that night) does not open that day.

In several zones at once (a phone prefix that spans zones, ``dispatcher/zones.py``) a
window is open when it is open in every one of them: no recipient is messaged outside its
hours wherever it may be. When they never share an open hour (a Russian mobile: 16 zones),
the country's main zone decides (``zones.main_zone``), else the campaign's fallback zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names as the API takes them, in ``date.weekday()`` order."""
RECIPIENT = "recipient"
"""``timezone`` value: each recipient's own zone, from its phone number or BSUID."""
HORIZON = timedelta(days=8)
"""Every allowed day recurs within a week: an opening further than this never comes (all
its days swallowed by DST jumps, or zones that never share an open hour)."""
_MAX_STEPS = 64
"""Rounds of the search for an instant open in every zone (each moves to a later opening)."""


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which a wall clock in ``zone`` shows ``at`` on ``day``;
    when the clock skips ``at``, the instant it jumps past it."""
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the earlier showing
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # Skipped (PEP 495): fold=1 maps to an instant before the jump, fold=0 to one after it.
    # The jump is on a whole second; bisect for it.
    lo = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    hi = int(first.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Allowed days (``date.weekday()`` numbers) and hours, in no zone yet."""

    days: frozenset[int]
    start: time | None = None
    end: time | None = None
    """Both None: the whole day. ``end`` before ``start``: closes the next day."""

    def __post_init__(self) -> None:
        if not self.days or not self.days <= set(range(7)):
            raise ValueError("days must name at least one day of the week")
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither (the whole day)")
        if self.start is not None and self.start == self.end:
            raise ValueError("start and end must differ (neither: the whole day)")

    @property
    def crosses_midnight(self) -> bool:
        return self.start is not None and self.end is not None and self.end < self.start

    def interval(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
        """The window that opens on ``day`` (local) as UTC instants [opens, closes); None
        when ``day`` is not allowed or a DST jump swallows the window that day."""
        if day.weekday() not in self.days:
            return None
        start = self.start or time(0)
        opens = local_instant(day, start, zone)
        if self.end is None:
            closes = local_instant(day + timedelta(days=1), time(0), zone)
        elif self.crosses_midnight:
            closes = local_instant(day + timedelta(days=1), self.end, zone)
        else:
            closes = local_instant(day, self.end, zone)
        return (opens, closes) if opens < closes else None

    def next_opening(self, at: datetime, zone: ZoneInfo) -> datetime | None:
        """``at`` itself when the window is open then, else when it opens next in ``zone``;
        None when it does not within :data:`HORIZON`."""
        today = at.astimezone(zone).date()
        # From yesterday: a window opened then may still be open (it crosses midnight).
        for offset in range(-1, HORIZON.days + 1):
            interval = self.interval(today + timedelta(days=offset), zone)
            if interval is None or interval[1] <= at:
                continue
            # Windows of successive days never overlap: the first not closed yet is it.
            return max(interval[0], at)
        return None

    def is_open(self, at: datetime, zone: ZoneInfo) -> bool:
        return self.next_opening(at, zone) == at

    def next_opening_in_all(self, at: datetime, zones: Iterable[ZoneInfo]) -> datetime | None:
        """The first instant from ``at`` at which the window is open in every zone; None
        when there is none within :data:`HORIZON` (they never share an open hour)."""
        zones = list(zones)
        candidate = at
        for _ in range(_MAX_STEPS):
            openings = [self.next_opening(candidate, zone) for zone in zones]
            if not openings or any(o is None for o in openings):
                return None
            latest = max(o for o in openings if o is not None)
            if latest == candidate:  # open everywhere
                return candidate
            if latest - at > HORIZON:
                return None
            # No instant before the latest opening is open everywhere: start again there.
            candidate = latest
        return None


@dataclass(frozen=True, slots=True)
class SendWindow:
    """A campaign's window: its schedule in the campaign's zone, or in each recipient's
    (``per_recipient``; ``zone`` then stands for recipients whose zone is unknown)."""

    schedule: Schedule
    zone: ZoneInfo
    per_recipient: bool = False

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> SendWindow:
        """As the campaign row keeps it (``api/schemas.py`` ``SendWindowIn.stored``)."""
        hours = value.get("start"), value.get("end")
        per_recipient = value["timezone"] == RECIPIENT
        return cls(
            Schedule(
                frozenset(WEEKDAYS.index(day) for day in value["days"]),
                None if hours[0] is None else time.fromisoformat(hours[0]),
                None if hours[1] is None else time.fromisoformat(hours[1]),
            ),
            ZoneInfo(value["fallback_timezone"] if per_recipient else value["timezone"]),
            per_recipient,
        )

    def next_opening(self, at: datetime) -> datetime | None:
        """In the campaign's zone (``at`` when open)."""
        return self.schedule.next_opening(at, self.zone)

    def opening_for(
        self, at: datetime, zones: tuple[ZoneInfo, ...], main: ZoneInfo | None = None
    ) -> datetime | None:
        """For a recipient who may be in any of ``zones`` (empty: unknown): when the window
        is open in all of them (``at`` when it is now). When they never share an open hour:
        in ``main``, the zone of most of its country's people; without one (or with no zone
        known), in the campaign's zone."""
        if zones:
            opening = self.schedule.next_opening_in_all(at, zones)
            if opening is not None:
                return opening
            if main is not None:
                return self.schedule.next_opening(at, main)
        return self.next_opening(at)
