"""The automatic winner's decision: pure, from per-variant sends and reads alone.

A variant wins when its read rate beats each other variant's in a one-sided two-proportion
z-test. Two corrections keep the chance of a false winner (any winner when no variant is
better) at most ``alpha = 1 - confidence``:

- Over the variants: the best of k is chosen *after* looking, so testing it one-sided at
  alpha errs up to k times alpha (each variant may be the one that looks best by chance,
  and each has its alpha). Requiring every comparison to pass (intersection-union) protects
  a fixed candidate, not a chosen one: each comparison is run at alpha / k (Bonferroni over
  the k candidates; for two variants that is the two-sided test at alpha).
- Over time: testing the same data again as sends accumulate inflates the error with every
  look. Looks are bounded: look j (from 0) happens once the smallest variant has
  ``min_sends_per_variant * 2**j`` matured sends, for at most ``max_looks`` looks, and each
  spends alpha / max_looks (Bonferroni over the looks: conservative, simple; an O'Brien-
  Fleming spending would spend less early and more late, for no gain worth the formulas).

So each comparison needs p < alpha / (k * max_looks). Only sends older than
``read_after_s`` are judged (``dispatcher/engine/winner_watch.py``): early reads come
from the recipients who read soonest, and would favour the template read sooner over the one
read more.
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


def look_sends(rule: AutoWinner) -> list[int]:
    """The smallest variant's sends at each look: the minimum, doubled at each look after."""
    return [rule.min_sends_per_variant * 2**j for j in range(rule.max_looks)]


def look_at(smallest_sent: int, rule: AutoWinner) -> int | None:
    """The look (from 0) that ``smallest_sent`` sends of the smallest variant have reached:
    the last one whose sends they reach; None before the first."""
    reached = [j for j, sends in enumerate(look_sends(rule)) if smallest_sent >= sends]
    return reached[-1] if reached else None


def comparison_alpha(rule: AutoWinner, variants: int) -> float:
    """What each comparison's one-sided p must stay below (the module's docstring)."""
    return (1 - rule.confidence) / (variants * rule.max_looks)


def decide(
    arms: Sequence[Arm], rule: AutoWinner, interval_confidence: float, look: int = 0
) -> Decision | None:
    """The winner at ``look`` (from 0), or None while a variant lacks the look's sends or no
    variant is better enough. Each look must be judged at most once: the caller keeps which
    it judged."""
    if len(arms) < 2 or not 0 <= look < rule.max_looks:
        return None
    if any(arm.sent < look_sends(rule)[look] for arm in arms):
        return None
    alpha = comparison_alpha(rule, len(arms))
    props = [Proportion(arm.read, arm.sent) for arm in arms]
    best = max(range(len(arms)), key=lambda i: (props[i].rate or 0.0, -i))
    tests = {
        other: z_test(props[best], props[other]) for other in range(len(arms)) if other != best
    }
    if not all(p < alpha for _, p in tests.values()):
        return None
    comparisons = [
        {"variant": other, "label": arms[other].label, "z": z, "p": p}
        for other, (z, p) in tests.items()
    ]
    figures = {
        "confidence": rule.confidence,
        "min_sends_per_variant": rule.min_sends_per_variant,
        "look": look + 1,
        "max_looks": rule.max_looks,
        "alpha": alpha,
        "read_after_s": rule.read_after_s,
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
