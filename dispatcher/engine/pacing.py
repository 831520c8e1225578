"""One number's pacing: every policy an instance runs before a send, composed in order.

Pair-rate guard, circuit breaker, the sliding window (never more than the limit in any
second), the token bucket (smooth pacing; the adaptive rate sets its rate). Pure:
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
from dispatcher.policies.sliding_window import SlidingWindowLimiter
from dispatcher.policies.token_bucket import TokenBucket


class Wait(StrEnum):
    """Why a send must wait."""

    NONE = "none"
    PAIR = "pair"
    """This recipient was messaged too recently: set the message aside, send others."""
    BREAKER = "breaker"
    """The Graph API keeps failing: send nothing until the breaker lets a probe through."""
    RATE = "rate"
    """The number's rate: wait for the next token, or for the window to move."""


@dataclass(frozen=True, slots=True)
class PacingConfig:
    """Tunables of :class:`Pacer`."""

    rate_headroom: float = 0.005
    """The bucket paces this share below the limit, so that the window below stays a
    safety net rather than the pace-setter (a window-paced sender loses every delay)."""
    jitter_margin_s: float = 0.006
    """No ``limit`` sends fit in any window of one second plus this: room for the network
    jitter between our clock and Meta's, so Meta never counts more than the limit."""
    catch_up_s: float = 0.002
    """Lateness the token bucket may make up at once (its burst beyond one token): timer
    and event-loop delays of up to this long cost no throughput. Bounded by the headroom:
    the bucket's ``rate * (1 s + jitter margin) + burst`` must stay within the limit, or
    the window would set the pace."""
    pair_interval_s: float = 6.0
    pair_burst: int = 1
    adaptive: AdaptiveRateConfig = field(
        default_factory=lambda: AdaptiveRateConfig(decrease_factor=0.9, quiet_period_s=3.0)
    )
    """A 130429 at this pace means a small overshoot (jitter between our clock and Meta's,
    a shared number): a message or two over the limit, not a fifth. Cut by a tenth and climb
    back soon; throttles that keep coming past the cut's cooldown cut again."""
    breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)


class Pacer:
    """Decides when the next message of one number may go."""

    def __init__(
        self, limit_mps: float, config: PacingConfig | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.config = config or PacingConfig()
        self._clock = clock
        self.adaptive = AdaptiveRate(limit_mps, self.config.adaptive, clock)
        rate = self.adaptive.rate()
        self.bucket = TokenBucket(self._paced(rate), self._burst(rate), clock)
        self.window = SlidingWindowLimiter(
            self._window_limit(rate), 1.0 + self.config.jitter_margin_s, clock
        )
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
        window_wait = self.window.wait_time()
        if window_wait > 0:
            return Wait.RATE, window_wait
        rate_wait = self.bucket.try_acquire()
        if rate_wait > 0:
            return Wait.RATE, rate_wait
        # The token is taken: the caller must now admit (or the token is simply spent).
        return Wait.NONE, 0.0

    def assume_window_used(self) -> None:
        """A predecessor (the process this one replaced) may have sent up to the limit in the
        last second, and Meta counts per number, not per process: wait one window first."""
        self.window.fill()

    def admit(self, address: str) -> bool:
        """Record a send to ``address`` going out now (after ``next_wait`` said NONE).

        False if the breaker took back its permission in between (half-open probes full).
        """
        if self.breaker.try_acquire() > 0:
            return False
        self.pairs.try_acquire(address)
        self.window.record()
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

    def throttled(self, throttle: Throttle) -> None:
        """Meta reported a throttle outside any send (a webhook's ``value.errors[]``): cut
        the rate as that error on a send would, with no message and no breaker involved."""
        if throttle is Throttle.PAIR:
            return  # about one customer, whom an error with no message does not name
        self.adaptive.on_throttle(throttle)
        self._sync_rate()

    def _sync_rate(self) -> None:
        rate = self.adaptive.rate()
        if self._paced(rate) != self.bucket.rate:
            self.bucket.reconfigure(self._paced(rate), self._burst(rate))
            self.window.set_limit(self._window_limit(rate))

    def _paced(self, rate: float) -> float:
        return rate * (1.0 - self.config.rate_headroom)

    def _burst(self, rate: float) -> float:
        return 1.0 + rate * self.config.catch_up_s

    @staticmethod
    def _window_limit(rate: float) -> int:
        return max(1, int(rate))
