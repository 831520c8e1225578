"""What to do with one failed send: the retry decision, as a pure function.

:meth:`~dispatcher.engine.pipeline.SendPipeline._on_error` only carries the decision out;
everything it depends on comes in as plain values (the error's rule, the message's attempt
and throttle counts, the backoff policy and its previous delay), so it is tested without a
pipeline, a network or a clock (as dramatiq keeps ``compute_backoff`` apart from its retries
middleware). Classes follow DESIGN.md, "Error classes" (Meta's Error codes page).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dispatcher.meta.error_codes import ErrorClass, ErrorRule, Throttle
from dispatcher.policies.backoff import Backoff

THROTTLED_OUT = "throttled too many times"
EXHAUSTED = "retries exhausted"
EXHAUSTED_PREFIXES = (EXHAUSTED, THROTTLED_OUT)
"""How the error message of a dead-lettered message begins (``Decision.why``): what tells
"the in-send retries ran out" apart from a permanent failure (dispatcher/retry_policy.py)."""


class Action(StrEnum):
    """What happens to the message (and, for some, to its number or campaign)."""

    RETRY_NOW = "retry_now"
    """Back to the front of the line: the pacer's rate cut is the delay (throughput throttle)."""
    RETRY_AFTER = "retry_after"
    """Retry after ``delay_s`` (backoff, or a pair's cool-down)."""
    FAIL = "fail"
    """Never retried: the message fails with the error."""
    DEAD_LETTER = "dead_letter"
    """Retries exhausted: failed and kept on the dead-letter stream (``retry_dlq``)."""
    HALT_INSTANCE = "halt_instance"
    """The number cannot send: stop it, give the message back without an attempt."""
    HOLD_CAMPAIGN = "hold_campaign"
    """The campaign's template cannot be sent: hold the campaign, give the message back
    without an attempt."""
    PAUSE_NUMBER = "pause_number"
    """The number is in maintenance: pause it ``delay_s``, then retry; no attempt used."""


@dataclass(frozen=True, slots=True)
class RetryState:
    """The message's history, as the decision needs it."""

    attempts: int
    """Sends tried before this one (earlier runs included)."""
    throttled: int
    """Throttle answers before this one (they use no attempt)."""
    previous_delay_s: float | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The tunables the decision reads."""

    backoff: Backoff
    max_throttle_retries: int = 50
    """Throttle answers do not use up attempts, but a message is not retried forever."""
    maintenance_pause_s: float = 60.0
    """131057: Meta takes the number off the platform for up to a minute."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome: an action, and what the message's counters become."""

    action: Action
    attempts: int
    """The message's attempt count after this answer."""
    throttled: int
    delay_s: float | None = None
    """RETRY_AFTER and PAUSE_NUMBER: how long."""
    why: str = ""
    """For FAIL and DEAD_LETTER: a prefix of the stored error message."""


def decide(
    rule: ErrorRule, state: RetryState, policy: RetryPolicy, *, pair_wait_s: float = 0.0
) -> Decision:
    """What to do after a send answered with an error of ``rule``.

    ``pair_wait_s``: how long the pair-rate guard wants this recipient left alone (131056).
    """
    cls = rule.error_class
    attempts, throttled = state.attempts, state.throttled
    if cls is ErrorClass.THROTTLE:
        throttled += 1
        if throttled > policy.max_throttle_retries:
            return Decision(Action.DEAD_LETTER, attempts, throttled, why=THROTTLED_OUT)
        if rule.throttle is Throttle.PAIR:
            return Decision(Action.RETRY_AFTER, attempts, throttled, delay_s=max(0.0, pair_wait_s))
        return Decision(Action.RETRY_NOW, attempts, throttled)
    if cls is ErrorClass.MAINTENANCE:
        return Decision(
            Action.PAUSE_NUMBER, attempts, throttled, delay_s=policy.maintenance_pause_s
        )
    if cls in (ErrorClass.PERMANENT_INSTANCE, ErrorClass.PORTFOLIO_HOLD):
        return Decision(Action.HALT_INSTANCE, attempts, throttled)
    if cls is ErrorClass.PERMANENT_TEMPLATE:
        return Decision(Action.HOLD_CAMPAIGN, attempts, throttled)
    attempts += 1
    if cls is ErrorClass.PERMANENT_MESSAGE:
        return Decision(Action.FAIL, attempts, throttled)
    limit = min(rule.max_attempts or policy.backoff.max_attempts, policy.backoff.max_attempts)
    delay = None
    if attempts < limit:
        delay = policy.backoff.next_delay(attempts, state.previous_delay_s)
    if delay is None:
        return Decision(
            Action.DEAD_LETTER,
            attempts,
            throttled,
            why=f"{EXHAUSTED} after {attempts} attempts",
        )
    return Decision(Action.RETRY_AFTER, attempts, throttled, delay_s=delay)
