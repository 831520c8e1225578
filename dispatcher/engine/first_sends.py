"""Is a campaign itself wrong? Watch its first sends for bad-parameter errors.

A campaign whose template parameters do not fit its template fails every recipient with the
same bad-parameter error (100, 131008, 131009, 132000, ...: DESIGN.md, "Error classes").
Rather than burn the whole list, hold the campaign when most of its first results are such
errors. Pure: fed one result at a time, per campaign, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID


@dataclass(frozen=True, slots=True)
class FirstSendsConfig:
    window: int = 20
    """How many of a campaign's first results are looked at."""
    bad_ratio: float = 0.8
    """Hold when at least this share of them failed with a bad parameter."""


@dataclass(slots=True)
class _Tally:
    seen: int = 0
    bad: int = 0
    decided: bool = False


@dataclass(slots=True)
class FirstSendsWatch:
    """Per campaign, over its first ``window`` results on this number."""

    config: FirstSendsConfig = field(default_factory=FirstSendsConfig)
    _tallies: dict[UUID, _Tally] = field(default_factory=dict)

    def record(self, campaign_id: UUID, bad_parameter: bool) -> bool:
        """Count one result; True exactly once, when the campaign should be held."""
        tally = self._tallies.setdefault(campaign_id, _Tally())
        if tally.decided:
            return False
        tally.seen += 1
        tally.bad += bad_parameter
        needed = self.config.bad_ratio * self.config.window
        if tally.bad >= needed:
            tally.decided = True
            return True
        if tally.seen - tally.bad > self.config.window - needed or tally.seen >= self.config.window:
            tally.decided = True  # can no longer reach the ratio: the campaign is fine
        return False

    def forget(self, campaign_id: UUID) -> None:
        """After a hold is lifted: watch the campaign's next sends afresh."""
        self._tallies.pop(campaign_id, None)
