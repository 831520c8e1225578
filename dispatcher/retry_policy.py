"""Automatic retry of failed messages: a campaign's retry policy and its decision.

A message that failed for good (its row is ``failed``) may deserve another round later:
Meta's 131049 ("not delivered to maintain healthy ecosystem engagement", Meta's Error codes
page: a per-user limit on marketing messages; Meta advises waiting before trying again) is
reported by a failed status webhook after Meta accepted the send, and a message whose
in-send retries for throttles or 5xx ran out (the dead-letter path of
:func:`dispatcher.engine.retry.decide`) may well go through minutes later. Every other
permanent code (131026 undeliverable, 131050 stopped marketing, bad parameters, ...) is never
retried, and a policy asking for one is refused (422 naming the field).

:func:`decide` is pure: (the failure, the retries already made) -> a delay or never. The
engine (``engine/auto_retry.py``) carries it out through ``store/attempts.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dispatcher.engine.retry import EXHAUSTED_PREFIXES
from dispatcher.meta.error_codes import ERROR_CODES, ErrorClass
from dispatcher.store.models import IN_DOUBT_PREFIX

ENGAGEMENT_CODE = 131049
"""Meta's per-user marketing limit ("healthy ecosystem engagement"): retried, not before 24 h
by default."""
RETRY_LATER_CODES = frozenset({ENGAGEMENT_CODE})
"""Codes classed permanent for the message (``meta/error_codes.py``) that a later round may
still deliver: the only permanent codes a policy may name."""
NEVER_RETRIED = frozenset(
    {
        ErrorClass.PERMANENT_MESSAGE,
        ErrorClass.PERMANENT_TEMPLATE,
        ErrorClass.PERMANENT_INSTANCE,
        ErrorClass.PORTFOLIO_HOLD,
    }
)
MAX_AFTER_S = 7 * 24 * 3600.0
"""A retry later than a week is a new campaign, not a retry."""
MAX_ROUNDS = 10
MAX_RULES = 10
DAY_S = 24 * 3600.0


class On(StrEnum):
    """Failures a rule names by kind rather than by code."""

    TRANSIENT_EXHAUSTED = "transient_exhausted"
    """The in-send retries for throttles, 5xx, timeouts or transient codes ran out (today's
    dead letters)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """What the decision needs to know of a failed attempt."""

    code: int | None
    """Meta's error code (None: an HTTP status or a network error without one)."""
    exhausted: bool
    """Failed because its in-send retries ran out, not because Meta refused it for good."""
    in_doubt: bool = False
    """Failed by the in-doubt policy: Meta may have taken it, so it is never retried."""

    @classmethod
    def of(cls, code: int | None, message: str | None) -> Failure:
        """Read from a failed row: ``decide`` in ``engine/retry.py`` starts the message of
        every dead letter with one of :data:`EXHAUSTED_PREFIXES`, the in-doubt policy its
        failures with :data:`IN_DOUBT_PREFIX`."""
        text = message or ""
        return cls(code, text.startswith(EXHAUSTED_PREFIXES), text.startswith(IN_DOUBT_PREFIX))


def _retryable(code: int) -> int:
    rule = ERROR_CODES.get(code)
    if code not in RETRY_LATER_CODES and rule is not None and rule.error_class in NEVER_RETRIED:
        raise ValueError(
            f"{code} is permanent ({rule.error_class.value}: {rule.reason}): never retried; "
            f"of the permanent codes only {sorted(RETRY_LATER_CODES)} may be"
        )
    return code


class RetryRule(BaseModel):
    """Which failures, after how long, how many rounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    on: On | None = Field(
        default=None,
        description="A kind of failure: transient_exhausted (in-send retries for "
        "throttles, 5xx, timeouts ran out, whatever the code); or codes.",
    )
    codes: Annotated[list[Annotated[int, Field(ge=0, le=2**31 - 1)]], Field(max_length=50)] = Field(
        default_factory=list,
        description="Meta error codes this rule retries: 131049, or transient and throttle "
        "codes (they fail only once their in-send retries ran out).",
    )
    after_s: float = Field(
        ge=1, le=MAX_AFTER_S, description="Seconds after the failure before the next attempt."
    )
    max_rounds: int = Field(
        default=1,
        ge=1,
        le=MAX_ROUNDS,
        description="Retry while the recipient has had fewer automatic retries than this.",
    )

    @field_validator("codes")
    @classmethod
    def _codes(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("codes must be distinct")
        return [_retryable(code) for code in value]

    @model_validator(mode="after")
    def _one_trigger(self) -> RetryRule:
        if bool(self.codes) == (self.on is not None):
            raise ValueError("give exactly one of codes and on")
        return self

    def matches(self, failure: Failure) -> bool:
        if self.on is On.TRANSIENT_EXHAUSTED:
            return failure.exhausted
        return failure.code is not None and failure.code in self.codes


class RetryPolicy(BaseModel):
    """A campaign's automatic retries: the first rule that matches a failure decides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: Annotated[list[RetryRule], Field(max_length=MAX_RULES)] = Field(
        description="Checked in order; a failure no rule matches is never retried. Empty: "
        "no automatic retry."
    )

    @field_validator("rules")
    @classmethod
    def _codes_once(cls, rules: list[RetryRule]) -> list[RetryRule]:
        seen: dict[int | str, int] = {}
        for index, rule in enumerate(rules):
            keys: list[int | str] = [*rule.codes, *([rule.on.value] if rule.on else [])]
            for key in keys:
                if key in seen:
                    raise ValueError(f"rule {index} repeats {key} of rule {seen[key]}")
                seen[key] = index
        return rules

    @classmethod
    def stored(cls, value: dict[str, Any] | None) -> RetryPolicy:
        """The policy a campaign stored (None: :data:`DEFAULT_POLICY`)."""
        return DEFAULT_POLICY if value is None else cls.model_validate(value)


DEFAULT_POLICY = RetryPolicy(
    rules=[
        # Meta's per-user marketing limit: one more round a day later.
        RetryRule(codes=[ENGAGEMENT_CODE], after_s=DAY_S, max_rounds=1),
        # Meta or the network was away longer than the in-send backoff (about a minute).
        RetryRule(on=On.TRANSIENT_EXHAUSTED, after_s=300, max_rounds=2),
    ]
)
"""What a campaign without a ``retry_policy`` gets (README, "Automatic retry")."""


def decide(policy: RetryPolicy, failure: Failure, retries: int) -> float | None:
    """Seconds to wait before the next attempt, or None: the failure is final.

    ``retries``: automatic retries the recipient already had (its current attempt is number
    ``retries + 1``); every rule's ``max_rounds`` counts them all, so a recipient gets at
    most the largest ``max_rounds`` of the rules it meets. A failure in doubt is final
    whatever the policy says (README, "Automatic retry"): a resend may be a second message.
    """
    if failure.in_doubt:
        return None
    for rule in policy.rules:
        if rule.matches(failure):
            return rule.after_s if retries < rule.max_rounds else None
    return None
