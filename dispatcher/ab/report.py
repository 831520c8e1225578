"""What the API, the SDK, the CLI and the console show of an A/B campaign: each variant's
counters, read rate and interval, and the winner when one was decided. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from dispatcher.ab.settings import AbTest
from dispatcher.ab.stats import Proportion, wilson
from dispatcher.ab.winner import Decision


@dataclass(frozen=True, slots=True)
class VariantCounts:
    """One variant's counters, kept by the database (migration 0016)."""

    variant: int
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class Winner(Decision):
    """The automatic winner as recorded, once, with the figures it was decided on."""

    decided_at: datetime


@dataclass(frozen=True, slots=True)
class VariantLine:
    variant: int
    label: str
    weight: float
    template: dict[str, Any]
    sent: int
    delivered: int
    read: int
    failed: int
    read_rate: float | None
    """read / sent; None before any send."""
    read_rate_low: float
    read_rate_high: float
    """The Wilson score interval of the read rate at the report's confidence."""
    winner: bool


@dataclass(frozen=True, slots=True)
class VariantReport:
    confidence: float
    auto_winner: dict[str, Any] | None
    variants: list[VariantLine] = field(default_factory=list)
    winner: Winner | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-safe (times as ISO 8601), as the API shows it."""
        data = asdict(self)
        if self.winner is not None:
            data["winner"]["decided_at"] = self.winner.decided_at.isoformat()
        return data


def build(ab: AbTest, counts: Sequence[VariantCounts], winner: Winner | None) -> VariantReport:
    """Every variant of ``ab``, those without a counter row yet at zero."""
    by_variant = {c.variant: c for c in counts}
    lines = []
    for index, variant in enumerate(ab.variants):
        c = by_variant.get(index, VariantCounts(index))
        prop = Proportion(c.read, c.sent)
        low, high = wilson(prop, ab.confidence)
        lines.append(
            VariantLine(
                variant=index,
                label=variant.label,
                weight=variant.weight,
                template=variant.template,
                sent=c.sent,
                delivered=c.delivered,
                read=c.read,
                failed=c.failed,
                read_rate=prop.rate,
                read_rate_low=low,
                read_rate_high=high,
                winner=winner is not None and winner.variant == index,
            )
        )
    auto = ab.to_json()["auto_winner"]
    return VariantReport(ab.confidence, auto, lines, winner)
