"""One number's pacing: every policy an instance runs before a send, composed in order.

Pair-rate guard, circuit breaker, token bucket (whose rate the adaptive rate sets). Pure:
``next_wait`` answers how long to wait and why; ``admit`` records a send going out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

from dispatcher.meta.error_codes import ErrorClass, Throttle
from dispatcher.policies import Clock
from dispatcher.policies.adaptive_rate import AdaptiveRate, AdaptiveRateConfig
from dispatcher.policies.circuit_breaker import CircuitBreaker, CircuitBreakerConfig
from dispatcher.policies.pair_rate import PairRateGuard
from dispatcher.policies.token_bucket import TokenBucket


class Wait(StrEnum):
    """Why a send must wait."""

    NONE = "none"
    PAIR = "pair"
    """This recipient was messaged too recently: set the message aside, send others."""
    BREAKER = "breaker"
    """The Graph API keeps failing: send nothing until the breaker lets a probe through."""
    RATE = "rate"
    """The number's rate: wait for the next token."""


@dataclass(frozen=True, slots=True)
class PacingConfig:
    """Tunables of :class:`Pacer`."""

    rate_headroom: float = 0.008
    """The bucket runs this share below the number's limit, so that timer lateness and
    network jitter never make Meta see more than the limit in any one-second window."""
    catch_up_s: float = 0.002
    """Lateness the bucket may make up at once (its burst beyond one token), in seconds."""
    pair_interval_s: float = 6.0
    pair_burst: int = 1
    adaptive: AdaptiveRateConfig = field(default_factory=AdaptiveRateConfig)
    breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)


class Pacer:
    """Decides when the next message of one number may go."""

    def __init__(
        self, limit_mps: float, config: PacingConfig | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.config = config or PacingConfig()
        self._clock = clock
        self.adaptive = AdaptiveRate(limit_mps, self.config.adaptive, clock)
        rate = self._bucket_rate(self.adaptive.rate())
        self.bucket = TokenBucket(rate, self._burst(rate), clock)
        self.pairs = PairRateGuard(self.config.pair_interval_s, self.config.pair_burst, clock)
        self.breaker = CircuitBreaker(self.config.breaker, clock)

    @property
    def limit_mps(self) -> float:
        """The number's configured throughput."""
        return self.adaptive.ceiling

    def set_limit(self, limit_mps: float) -> None:
        """A new throughput for the number (detected or set by the operator)."""
        self.adaptive.set_ceiling(limit_mps)
        self._sync_rate()

    def current_rate(self) -> float:
        """Messages per second the bucket runs at now."""
        self._sync_rate()
        return self.bucket.rate

    def next_wait(self, address: str) -> tuple[Wait, float]:
        """What, if anything, holds back a send to ``address`` now, and for how long.

        Nothing is recorded: call :meth:`admit` when the send really goes.
        """
        pair_wait = self.pairs.wait_time(address)
        if pair_wait > 0:
            return Wait.PAIR, pair_wait
        breaker_wait = self.breaker.retry_after()
        if breaker_wait > 0:
            return Wait.BREAKER, breaker_wait
        self._sync_rate()
        rate_wait = self.bucket.try_acquire()
        if rate_wait > 0:
            return Wait.RATE, rate_wait
        # The token is taken: the caller must now admit (or the token is simply spent).
        return Wait.NONE, 0.0

    def admit(self, address: str) -> bool:
        """Record a send to ``address`` going out now (after ``next_wait`` said NONE).

        False if the breaker took back its permission in between (half-open probes full).
        """
        if self.breaker.try_acquire() > 0:
            return False
        self.pairs.try_acquire(address)
        return True

    def on_result(
        self,
        error_class: ErrorClass | None,
        throttle: Throttle | None,
        address: str,
        *,
        not_taken: bool = False,
    ) -> None:
        """Feed a send's outcome back: breaker, adaptive rate, pair guard.

        ``not_taken``: Meta refused the request before taking the message (HTTP 5xx), so it
        does not count toward the customer's pair rate.
        """
        if not_taken:
            self.pairs.refund(address)
        self.breaker.record(error_class)
        if throttle is None:
            return
        if throttle is Throttle.PAIR:
            self.pairs.penalize(address)
        else:
            self.adaptive.on_throttle(throttle)
            self._sync_rate()

    def _sync_rate(self) -> None:
        rate = self._bucket_rate(self.adaptive.rate())
        if rate != self.bucket.rate:
            self.bucket.reconfigure(rate, self._burst(rate))

    def _bucket_rate(self, rate: float) -> float:
        return rate * (1.0 - self.config.rate_headroom)

    def _burst(self, rate: float) -> float:
        return 1.0 + rate * self.config.catch_up_s
