"""The automatic winner's decision: pure, from per-variant sends and reads alone.

A variant wins when, with every variant past ``min_sends_per_variant`` sends, its read rate
beats each other variant's in a one-sided two-proportion z-test at ``confidence``. Requiring
every comparison to pass is an intersection-union test: its error rate is at most that of
each comparison, so no correction for the number of variants is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher.ab.settings import AutoWinner
from dispatcher.ab.stats import Proportion, wilson, z_test


@dataclass(frozen=True, slots=True)
class Arm:
    """What the decision reads of one variant."""

    label: str
    sent: int
    read: int


@dataclass(frozen=True, slots=True)
class Decision:
    variant: int
    """The winner: its index in the campaign's variants."""
    z: float
    """The smallest z of the winner against another variant: the closest call."""
    p_value: float
    """The largest one-sided p-value of those comparisons."""
    figures: dict[str, Any]
    """Per variant sent, read, rate and interval, and each comparison's z and p: recorded
    with the decision, as they were when it was made."""


def decide(arms: Sequence[Arm], rule: AutoWinner, interval_confidence: float) -> Decision | None:
    """The winner, or None while a variant lacks sends or no variant is better enough."""
    if len(arms) < 2 or any(arm.sent < rule.min_sends_per_variant for arm in arms):
        return None
    props = [Proportion(arm.read, arm.sent) for arm in arms]
    best = max(range(len(arms)), key=lambda i: (props[i].rate or 0.0, -i))
    tests = {
        other: z_test(props[best], props[other]) for other in range(len(arms)) if other != best
    }
    if not all(p < 1 - rule.confidence for _, p in tests.values()):
        return None
    comparisons = [
        {"variant": other, "label": arms[other].label, "z": z, "p": p}
        for other, (z, p) in tests.items()
    ]
    figures = {
        "confidence": rule.confidence,
        "min_sends_per_variant": rule.min_sends_per_variant,
        "variants": [
            _figures(index, arm, props[index], interval_confidence)
            for index, arm in enumerate(arms)
        ],
        "comparisons": comparisons,
    }
    return Decision(
        variant=best,
        z=min(z for z, _ in tests.values()),
        p_value=max(p for _, p in tests.values()),
        figures=figures,
    )


def _figures(index: int, arm: Arm, prop: Proportion, confidence: float) -> dict[str, Any]:
    low, high = wilson(prop, confidence)
    return {
        "variant": index,
        "label": arm.label,
        "sent": arm.sent,
        "read": arm.read,
        "read_rate": prop.rate,
        "interval": [low, high],
    }
