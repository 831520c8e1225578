"""Circuit breaker: stop hammering a Graph API that keeps failing, probe it, resume."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import StrEnum

from dispatcher.meta.error_codes import ErrorClass
from dispatcher.policies import Clock


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class CircuitBreakerConfig:
    """Tunables of :class:`CircuitBreaker`."""

    failure_ratio: float = 0.5
    """Open when at least this share of the calls in the window failed..."""
    min_volume: int = 20
    """...and the window holds at least this many calls."""
    window_s: float = 30.0
    buckets: int = 10
    """The window is kept as this many time buckets: memory is fixed whatever the rate."""
    open_duration_s: float = 15.0
    half_open_probes: int = 3
    """Calls let through at once while half-open."""


def counts_as_failure(error_class: ErrorClass | None) -> bool | None:
    """How a send outcome feeds the breaker: True failure, False success, None ignored.

    Only transient errors (and timeouts, in doubt) mean the Graph API is unwell. A
    permanent per-message error
    is a healthy answer; throttles have their own policy; instance errors stop the number.
    """
    if error_class is None or error_class is ErrorClass.PERMANENT_MESSAGE:
        return False
    if error_class in (ErrorClass.TRANSIENT, ErrorClass.IN_DOUBT):
        return True
    return None


class CircuitBreaker:
    """Closed / open / half-open over a sliding window of call outcomes."""

    __slots__ = (
        "_bucket_s",
        "_clock",
        "_config",
        "_counts",
        "_opened_at",
        "_probes_in_flight",
        "_state",
    )

    def __init__(
        self, config: CircuitBreakerConfig | None = None, clock: Clock = time.monotonic
    ) -> None:
        self._config = config or CircuitBreakerConfig()
        if not 0 < self._config.failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")
        if self._config.buckets < 1 or self._config.half_open_probes < 1:
            raise ValueError("buckets and half_open_probes must be at least 1")
        self._clock = clock
        self._bucket_s = self._config.window_s / self._config.buckets
        # bucket index -> [successes, failures]; only indexes inside the window are kept
        self._counts: dict[int, list[int]] = {}
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probes_in_flight = 0

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose cool-down ended reads as half-open)."""
        self._advance()
        return self._state

    def retry_after(self) -> float:
        """Seconds until a call may be let through (0.0 when one may go now), no side effect."""
        self._advance()
        if self._state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self._config.open_duration_s - self._clock())
        if self._state is BreakerState.HALF_OPEN:
            full = self._probes_in_flight >= self._config.half_open_probes
            return math.inf if full else 0.0
        return 0.0

    def try_acquire(self) -> float:
        """Let one call through and return 0.0, or return the seconds to wait.

        While half-open, the wait is infinite until a probe's result comes back.
        """
        wait = self.retry_after()
        if wait == 0.0 and self._state is BreakerState.HALF_OPEN:
            self._probes_in_flight += 1
        return wait

    def record(self, error_class: ErrorClass | None) -> None:
        """Feed the outcome of a call let through: None for success, else its error class."""
        failed = counts_as_failure(error_class)
        if failed is None:
            if self._state is BreakerState.HALF_OPEN:
                self._probes_in_flight = max(0, self._probes_in_flight - 1)
            return
        if failed:
            self.record_failure()
        else:
            self.record_success()

    def record_success(self) -> None:
        self._advance()
        if self._state is BreakerState.HALF_OPEN:
            self._close()
            return
        self._bucket()[0] += 1

    def record_failure(self) -> None:
        self._advance()
        if self._state is BreakerState.HALF_OPEN:
            self._open()
            return
        if self._state is BreakerState.OPEN:
            return  # a late answer to a call made before the breaker opened
        self._bucket()[1] += 1
        successes, failures = self._totals()
        volume = successes + failures
        if volume >= self._config.min_volume and failures >= self._config.failure_ratio * volume:
            self._open()

    def stats(self) -> dict[str, float | int | str]:
        """State and window counts, for the actor's stats."""
        successes, failures = self._totals()
        return {
            "state": self.state.value,
            "window_successes": successes,
            "window_failures": failures,
            "retry_after_s": min(self.retry_after(), 1e9),
        }

    def _advance(self) -> None:
        cooled = self._clock() >= self._opened_at + self._config.open_duration_s
        if self._state is BreakerState.OPEN and cooled:
            self._state = BreakerState.HALF_OPEN
            self._probes_in_flight = 0

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._counts.clear()
        self._probes_in_flight = 0

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._counts.clear()
        self._probes_in_flight = 0

    def _bucket(self) -> list[int]:
        index = int(self._clock() // self._bucket_s)
        self._drop_old(index)
        bucket = self._counts.get(index)
        if bucket is None:
            bucket = self._counts[index] = [0, 0]
        return bucket

    def _totals(self) -> tuple[int, int]:
        self._drop_old(int(self._clock() // self._bucket_s))
        successes = sum(bucket[0] for bucket in self._counts.values())
        failures = sum(bucket[1] for bucket in self._counts.values())
        return successes, failures

    def _drop_old(self, index: int) -> None:
        oldest = index - self._config.buckets + 1
        for stale in [key for key in self._counts if key < oldest]:
            del self._counts[stale]
