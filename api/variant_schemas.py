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
    DEFAULT_MAX_LOOKS,
    DEFAULT_MIN_SENDS,
    DEFAULT_READ_AFTER_S,
    MAX_CONFIDENCE,
    MAX_LOOKS,
    MAX_READ_AFTER_S,
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
    """Pick a winner automatically: a variant whose read rate beats every other gets the rest
    of the campaign. Judged at most ``max_looks`` times, when the smallest variant's sends
    older than ``read_after_s`` reach ``min_sends_per_variant`` times 1, 2, 4...; each look
    compares the best variant with each other one (one-sided two-proportion z-test) at
    p < (1 - confidence) / (variants * max_looks), so the chance of a false winner over all
    looks and variants is at most 1 - confidence (Bonferroni)."""

    min_sends_per_variant: Annotated[int, Field(ge=1, le=10_000_000)] = DEFAULT_MIN_SENDS
    confidence: Confidence = DEFAULT_CONFIDENCE
    max_looks: Annotated[int, Field(ge=1, le=MAX_LOOKS)] = DEFAULT_MAX_LOOKS
    read_after_s: Annotated[float, Field(ge=0, le=MAX_READ_AFTER_S)] = Field(
        default=DEFAULT_READ_AFTER_S,
        description="Sends count toward a look only once this old: reads take time.",
    )


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
        else AutoWinner(
            auto_winner.min_sends_per_variant,
            auto_winner.confidence,
            auto_winner.max_looks,
            auto_winner.read_after_s,
        ),
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
