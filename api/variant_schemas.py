"""A/B variants at the API's edge: what ``POST /campaigns`` takes as ``variants`` and
``auto_winner``, and what ``GET /campaigns/{id}/variants`` returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from api.schema_base import Input, TemplateIn
from dispatcher.ab.report import VariantLine, Winner
from dispatcher.ab.settings import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_SENDS,
    MAX_CONFIDENCE,
    MAX_WEIGHT,
    MIN_CONFIDENCE,
    AbTest,
    AutoWinner,
    Variant,
    default_label,
)

Confidence = Annotated[float, Field(ge=MIN_CONFIDENCE, le=MAX_CONFIDENCE)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class VariantIn(Input):
    """One arm of an A/B test: a template, sent to a share of the recipients by weight."""

    template: TemplateIn
    weight: Annotated[float, Field(gt=0, le=MAX_WEIGHT)] = Field(
        default=1.0, description="Relative share of the recipients (1 and 3: a quarter)."
    )
    label: Label | None = Field(default=None, description="Default: A, B, C... by position.")


class AutoWinnerIn(Input):
    """Pick a winner automatically: once every variant has ``min_sends_per_variant`` sends,
    a variant whose read rate beats every other at ``confidence`` (one-sided two-proportion
    z-test) gets the rest of the campaign."""

    min_sends_per_variant: Annotated[int, Field(ge=1, le=10_000_000)] = DEFAULT_MIN_SENDS
    confidence: Confidence = DEFAULT_CONFIDENCE


def ab_test(
    variants: Sequence[VariantIn], confidence: float | None, auto_winner: AutoWinnerIn | None
) -> AbTest:
    """The campaign's A/B settings as the store keeps them."""
    return AbTest(
        variants=tuple(
            Variant(v.label or default_label(i), v.weight, v.template.stored())
            for i, v in enumerate(variants)
        ),
        confidence=DEFAULT_CONFIDENCE if confidence is None else confidence,
        auto_winner=None
        if auto_winner is None
        else AutoWinner(auto_winner.min_sends_per_variant, auto_winner.confidence),
    )


class VariantsOut(BaseModel):
    """Per variant: its counters, ``read_rate`` (read / sent; null before any send) and the
    Wilson score interval ``read_rate_low``..``read_rate_high`` at ``confidence``. ``winner``:
    the automatic winner with ``z`` (the smallest of its comparisons), ``p_value`` (the
    largest, one-sided) and the per-variant ``figures`` it was decided on; null until then."""

    confidence: float
    auto_winner: dict[str, Any] | None
    variants: list[VariantLine]
    winner: Winner | None
