"""A campaign's send window as the API and the SDK take it (``send_window``).

Validated here so that a bad zone, bad hours or no days answer 422 naming the field (a
pydantic model at the edge, as ``meta/components.py``); kept on the campaign as
:meth:`SendWindowIn.stored`, which ``dispatcher/windows.py`` reads.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from dispatcher.windows import RECIPIENT, WEEKDAYS, Schedule

MAX_PER_MINUTE = 10_000_000
"""Far above any portfolio's throughput: a cap is meant below it."""

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ZoneName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_+\-/]{1,64}$")]


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/Sao_Paulo)") from None
    return value


class SendWindowIn(BaseModel):
    """When a campaign may send: on ``days``, from ``start`` to ``end`` (local time)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: Annotated[list[Weekday], Field(min_length=1, max_length=7)] = Field(
        description="Days it may send (mon ... sun); a window crossing midnight belongs to "
        "the day it opens."
    )
    start: time | None = Field(
        default=None,
        description="Local time it opens, HH:MM or HH:MM:SS. With end; neither: all day.",
    )
    end: time | None = Field(
        default=None,
        validate_default=True,
        description="Local time it closes; before start: the next day (crosses midnight).",
    )
    timezone: ZoneName = Field(
        description="An IANA zone (America/Sao_Paulo), or 'recipient': each recipient's, "
        "from its phone number (or a BSUID's country)."
    )
    fallback_timezone: ZoneName | None = Field(
        default=None,
        validate_default=True,
        description="With timezone 'recipient' (and required then): the zone of "
        "recipients whose zone is unknown.",
    )

    @field_validator("days")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("days must be distinct")
        return sorted(value, key=WEEKDAYS.index)

    @field_validator("start", "end")
    @classmethod
    def _local(cls, value: time | None) -> time | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError("a local time, without offset: the zone is timezone's")
        return None if value is None else value.replace(microsecond=0)

    @field_validator("end")
    @classmethod
    def _hours(cls, value: time | None, info: Any) -> time | None:
        start = info.data.get("start")
        if "start" in info.data and (start is None) != (value is None):
            raise ValueError("give both start and end, or neither (the whole day)")
        if value is not None and value == start:
            raise ValueError("must differ from start (neither: the whole day)")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return value if value == RECIPIENT else _zone(value)

    @field_validator("fallback_timezone")
    @classmethod
    def _fallback(cls, value: str | None, info: Any) -> str | None:
        per_recipient = info.data.get("timezone") == RECIPIENT
        if value is None:
            if per_recipient:
                raise ValueError("required with timezone 'recipient'")
            return None
        if not per_recipient and "timezone" in info.data:
            raise ValueError("only with timezone 'recipient'")
        return _zone(value)

    def stored(self) -> dict[str, Any]:
        """As the campaign keeps it (``SendWindow.from_json``)."""
        stored = {
            "days": list(self.days),
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "timezone": self.timezone,
            "fallback_timezone": self.fallback_timezone,
        }
        Schedule(  # the same rules as the engine's, once more
            frozenset(WEEKDAYS.index(day) for day in self.days), self.start, self.end
        )
        return stored
