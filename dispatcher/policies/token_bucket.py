"""Token bucket: a steady rate with a bounded burst, and a rate that may change at run time."""

from __future__ import annotations

import math
import time

from dispatcher.policies import Clock


class TokenBucket:
    """Admits at most ``rate * t + burst`` sends in any window of length ``t``.

    ``try_acquire`` either takes a token and returns 0, or takes nothing and returns how
    long to wait before one will be there. The caller sleeps and asks again, so a rate cut
    while it sleeps is honoured.
    """

    __slots__ = ("_burst", "_clock", "_rate", "_tokens", "_updated_at")

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        _check_rate(rate)
        if not burst >= 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self._rate = float(rate)
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._updated_at = clock()

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> float:
        """The most tokens the bucket holds."""
        return self._burst

    def tokens(self) -> float:
        """Tokens available now."""
        self._refill()
        return self._tokens

    def set_rate(self, rate: float) -> None:
        """Change the rate from now on; tokens earned so far were earned at the old rate."""
        _check_rate(rate)
        self._refill()
        self._rate = float(rate)

    def reconfigure(self, rate: float, burst: float) -> None:
        """Change rate and burst from now on; tokens held beyond the new burst are dropped."""
        _check_rate(rate)
        if not burst >= 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self._refill()
        self._rate = float(rate)
        self._burst = float(burst)
        self._tokens = min(self._tokens, self._burst)

    def try_acquire(self, tokens: float = 1.0) -> float:
        """Take ``tokens`` and return 0.0, or take nothing and return the seconds to wait."""
        if tokens > self._burst:
            raise ValueError(f"cannot take {tokens} tokens from a bucket of {self._burst}")
        self._refill()
        # A caller that slept exactly the wait it was told may find the float refill a hair
        # short of the token: that hair is rounding, not rate.
        if self._tokens >= tokens - _ROUNDING:
            self._tokens -= tokens
            return 0.0
        if self._rate == 0:
            return math.inf
        return (tokens - self._tokens) / self._rate

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._updated_at
        if elapsed > 0:
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
            self._updated_at = now


_ROUNDING = 1e-9


def _check_rate(rate: float) -> None:
    if not (rate >= 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a finite number >= 0, got {rate}")
