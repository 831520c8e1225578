"""A campaign's A/B settings: its variants (template and weight), the confidence its read
rates are shown at, and the optional automatic winner. Stored as one jsonb (``ab_test``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_VARIANTS = 10
"""More arms split a campaign's sends too thin for any of them to reach a decision."""
MIN_VARIANTS = 2
DEFAULT_CONFIDENCE = 0.95
MIN_CONFIDENCE, MAX_CONFIDENCE = 0.5, 0.999
"""Below 0.5 a "winner" may be the worse variant; 1 can never be reached."""
MAX_WEIGHT = 1_000_000.0
DEFAULT_MIN_SENDS = 1_000
DEFAULT_MAX_LOOKS = 5
MAX_LOOKS = 20
"""Each look spends 1/looks of the error budget: beyond 20 a look's test is too strict to be
worth the while."""
DEFAULT_READ_AFTER_S = 3_600.0
MAX_READ_AFTER_S = 7 * 86_400.0
"""A send counts toward a look only this long after it went out: reads take time, and a look
judging fresh sends favours the template read sooner, not the one read more."""


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm: a template (Meta's ``{name, language, components}``) sent to a share of the
    recipients proportional to ``weight``."""

    label: str
    weight: float
    template: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AutoWinner:
    """A variant whose read rate beats every other takes the rest of the campaign. Judged at
    at most ``max_looks`` looks (the smallest variant's matured sends reaching
    ``min_sends_per_variant`` times 1, 2, 4...), on sends older than ``read_after_s``; the
    chance of a false winner over all looks is at most ``1 - confidence``
    (``dispatcher/ab/winner.py``)."""

    min_sends_per_variant: int
    confidence: float
    max_looks: int = DEFAULT_MAX_LOOKS
    read_after_s: float = DEFAULT_READ_AFTER_S


@dataclass(frozen=True, slots=True)
class AbTest:
    variants: tuple[Variant, ...]
    confidence: float = DEFAULT_CONFIDENCE
    """Of the read rates' intervals (Wilson score)."""
    auto_winner: AutoWinner | None = None

    @property
    def weights(self) -> list[float]:
        return [variant.weight for variant in self.variants]

    def to_json(self) -> dict[str, Any]:
        return {
            "variants": [
                {"label": v.label, "weight": v.weight, "template": v.template}
                for v in self.variants
            ],
            "confidence": self.confidence,
            "auto_winner": None
            if self.auto_winner is None
            else {
                "min_sends_per_variant": self.auto_winner.min_sends_per_variant,
                "confidence": self.auto_winner.confidence,
                "max_looks": self.auto_winner.max_looks,
                "read_after_s": self.auto_winner.read_after_s,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AbTest:
        auto = data.get("auto_winner")
        return cls(
            variants=tuple(
                Variant(str(v["label"]), float(v["weight"]), dict(v["template"]))
                for v in data["variants"]
            ),
            confidence=float(data.get("confidence", DEFAULT_CONFIDENCE)),
            auto_winner=None
            if auto is None
            else AutoWinner(
                int(auto["min_sends_per_variant"]),
                float(auto["confidence"]),
                # Settings stored before looks existed get the defaults.
                int(auto.get("max_looks", DEFAULT_MAX_LOOKS)),
                float(auto.get("read_after_s", DEFAULT_READ_AFTER_S)),
            ),
        )


def default_label(index: int) -> str:
    """A, B, C... for variants given without a label."""
    return chr(ord("A") + index)


def ab_test_from(
    variants: Sequence[Mapping[str, Any]],
    confidence: float | None = None,
    auto_winner: Mapping[str, Any] | None = None,
) -> AbTest:
    """Settings from plain values (the driver SDK's), checked as the API checks them (its
    pydantic models also check each template's components); a ``ValueError`` names the
    setting that is wrong."""
    if not MIN_VARIANTS <= len(variants) <= MAX_VARIANTS:
        raise ValueError(f"variants: give {MIN_VARIANTS} to {MAX_VARIANTS}")
    built = []
    for index, given in enumerate(variants):
        template = given.get("template")
        if not isinstance(template, Mapping) or not template.get("name"):
            raise ValueError(f"variants.{index}.template: a template with a name is required")
        weight = float(given.get("weight", 1.0))
        if not 0 < weight <= MAX_WEIGHT:
            raise ValueError(
                f"variants.{index}.weight: must be above 0 (at most {MAX_WEIGHT:,.0f})"
            )
        label = str(given.get("label") or default_label(index))
        built.append(Variant(label, weight, dict(template)))
    if len({v.label for v in built}) != len(built):
        raise ValueError("variants: labels must be distinct")
    auto = None
    if auto_winner is not None:
        auto = AutoWinner(
            int(auto_winner.get("min_sends_per_variant", DEFAULT_MIN_SENDS)),
            float(auto_winner.get("confidence", DEFAULT_CONFIDENCE)),
            int(auto_winner.get("max_looks", DEFAULT_MAX_LOOKS)),
            float(auto_winner.get("read_after_s", DEFAULT_READ_AFTER_S)),
        )
        if auto.min_sends_per_variant < 1:
            raise ValueError("auto_winner.min_sends_per_variant: must be at least 1")
        if not 1 <= auto.max_looks <= MAX_LOOKS:
            raise ValueError(f"auto_winner.max_looks: must be between 1 and {MAX_LOOKS}")
        if not 0 <= auto.read_after_s <= MAX_READ_AFTER_S:
            raise ValueError(
                f"auto_winner.read_after_s: must be between 0 and {MAX_READ_AFTER_S:,.0f}"
            )
        _check_confidence("auto_winner.confidence", auto.confidence)
    confidence = DEFAULT_CONFIDENCE if confidence is None else float(confidence)
    _check_confidence("confidence", confidence)
    return AbTest(tuple(built), confidence, auto)


def _check_confidence(name: str, value: float) -> None:
    if not MIN_CONFIDENCE <= value <= MAX_CONFIDENCE:
        raise ValueError(f"{name}: must be between {MIN_CONFIDENCE} and {MAX_CONFIDENCE}")
