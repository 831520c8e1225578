"""At most ``limit`` events in any window of ``window_s``: the shape of Meta's throughput check.

A token bucket paces smoothly but, to make up for timer lateness, must allow a burst, and a
burst can put more than the limit into one second. This log of recent sends is the hard
guarantee behind the bucket: whatever the lateness, no window of ``window_s`` ever holds more
than ``limit`` sends. A window a little longer than Meta's second leaves room for network
jitter between our clock and Meta's.
"""

from __future__ import annotations

import math
import time
from collections import deque

from dispatcher.policies import Clock


class SlidingWindowLimiter:
    """Sends in the last ``window_s`` seconds, at most ``limit`` of them."""

    __slots__ = ("_clock", "_limit", "_sent", "_window")

    def __init__(self, limit: int, window_s: float = 1.0, clock: Clock = time.monotonic) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self._limit = self._check(limit)
        self._window = float(window_s)
        self._clock = clock
        self._sent: deque[float] = deque()

    @property
    def limit(self) -> int:
        return self._limit

    def set_limit(self, limit: int) -> None:
        self._limit = self._check(limit)

    def count(self) -> int:
        """Sends inside the window now."""
        self._expire(self._clock())
        return len(self._sent)

    def wait_time(self) -> float:
        """Seconds until one more send fits (0.0 now); records nothing."""
        now = self._clock()
        self._expire(now)
        excess = len(self._sent) - self._limit
        if excess < 0:
            return 0.0
        # The send that must leave the window before one more fits.
        return max(self._sent[excess] + self._window - now, 1e-9)

    def fill(self) -> None:
        """Count the window as used up now: no send fits until it has moved on. For a new
        sender whose predecessor on the same number may have sent a moment ago."""
        now = self._clock()
        self._expire(now)
        self._sent.extend([now] * max(0, self._limit - len(self._sent)))

    def record(self) -> None:
        """A send went out now."""
        self._sent.append(self._clock())

    def _expire(self, now: float) -> None:
        sent = self._sent
        horizon = now - self._window
        while sent and sent[0] <= horizon:
            sent.popleft()

    @staticmethod
    def _check(limit: int) -> int:
        if limit < 1 or not math.isfinite(limit):
            raise ValueError(f"limit must be at least 1, got {limit}")
        return int(limit)
