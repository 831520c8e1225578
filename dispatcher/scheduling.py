"""When a campaign may be scheduled to start and expire: pure rules, given the time it is now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

SCHEDULE_SKEW = timedelta(seconds=60)
"""A start this far in the past is still taken (the client's clock may lag ours): it starts
at once."""
MAX_SCHEDULE_AHEAD = timedelta(days=366)
"""A start further ahead is refused: a year covers any real campaign, and a date such as
9999-12-31 is a mistake (and past what Postgres and Python hold once moved to UTC)."""


def schedule_start(at: datetime, now: datetime) -> datetime:
    """``at`` in UTC, or a ValueError saying why it cannot be a campaign's start.

    ``now`` is aware (UTC); ``at`` must carry its time zone: a naive time is ambiguous.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("must carry a time zone (e.g. 2030-01-01T09:00:00Z or +01:00)")
    try:
        start = at.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is past year 9999 in UTC
        raise ValueError("is out of range") from None
    if start < now - SCHEDULE_SKEW:
        raise ValueError("is in the past")
    if start > now + MAX_SCHEDULE_AHEAD:
        raise ValueError(f"is more than {MAX_SCHEDULE_AHEAD.days} days ahead")
    return start


def check_expiry(at: datetime, starts: datetime | None, now: datetime) -> datetime:
    """``at`` in UTC as a campaign's ``expires_at``, or a ValueError saying why not: it
    must be ahead (of now, and of the scheduled start ``starts`` if any)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("must carry a time zone (e.g. 2030-01-01T09:00:00Z or +01:00)")
    try:
        end = at.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if end <= now:
        raise ValueError("is in the past")
    if starts is not None and end <= starts:
        raise ValueError("must be after scheduled_at")
    if end > now + 2 * MAX_SCHEDULE_AHEAD:
        raise ValueError(f"is more than {2 * MAX_SCHEDULE_AHEAD.days} days ahead")
    return end
