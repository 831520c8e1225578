"""Per-recipient pacing, as Meta states its pair rate limit.

Meta ("Throughput" / pair rate limits,
https://developers.facebook.com/docs/whatsapp/cloud-api/overview#pair-rate-limits): one
message every 6 s to the same customer; a burst of up to 45 within 6 s is tolerated but
borrows from the future (a burst of 20 means about 2 minutes before the next); above it,
131056. So a burst may only start when all earlier borrowing is repaid, and it must fit in
one interval; a token bucket with ``burst`` tokens would allow sends that Meta refuses
(after a burst of 2, a third one interval later, while the second's debt is still due).
"""

from __future__ import annotations

import time

from dispatcher.policies import Clock


class PairRateGuard:
    """At most ``burst`` messages within one ``interval_s`` to a recipient, and then none
    until each of them has been paid back (``interval_s`` each).

    Per recipient: ``due`` (when the borrowing is repaid), the end of the current burst
    window, and how many the burst holds. A recipient whose debt is repaid holds no state,
    so memory is bounded by the recipients sent to within the last ``burst * interval_s``
    seconds (plus penalised ones).
    """

    __slots__ = ("_burst", "_clock", "_interval", "_state", "_sweep_at")

    _MIN_SWEEP = 1024

    def __init__(
        self, interval_s: float = 6.0, burst: int = 1, clock: Clock = time.monotonic
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self._interval = float(interval_s)
        self._burst = burst
        self._clock = clock
        self._state: dict[str, tuple[float, float, int]] = {}
        """recipient -> (due, burst window end, sends in the burst)"""
        self._sweep_at = self._MIN_SWEEP

    def __len__(self) -> int:
        """Recipients currently tracked."""
        return len(self._state)

    def try_acquire(self, recipient: str) -> float:
        """Record a send to ``recipient`` and return 0.0, or return the seconds to wait."""
        now = self._clock()
        wait = self._wait(recipient, now)
        if wait > 0:
            return wait
        state = self._state.get(recipient)
        if state is None or state[0] <= now:  # repaid: a new burst starts
            self._state[recipient] = (now + self._interval, now + self._interval, 1)
        else:
            due, window_end, count = state
            self._state[recipient] = (due + self._interval, window_end, count + 1)
        self._maybe_sweep(now)
        return 0.0

    def wait_time(self, recipient: str) -> float:
        """Seconds until ``recipient`` may be sent to; records nothing."""
        return self._wait(recipient, self._clock())

    def _wait(self, recipient: str, now: float) -> float:
        state = self._state.get(recipient)
        if state is None:
            return 0.0
        due, window_end, count = state
        if due <= now or (now < window_end and count < self._burst):
            return 0.0
        return due - now

    def refund(self, recipient: str) -> None:
        """Give back the last send to ``recipient``: it never reached the customer (Meta
        answered 5xx before taking it)."""
        state = self._state.get(recipient)
        if state is None:
            return
        due, window_end, count = state
        if count <= 1:
            del self._state[recipient]
        else:
            self._state[recipient] = (due - self._interval, window_end, count - 1)

    def penalize(self, recipient: str, delay_s: float | None = None) -> None:
        """Meta said 131056 for ``recipient``: hold it for ``delay_s`` (default one interval)."""
        now = self._clock()
        delay = self._interval if delay_s is None else delay_s
        state = self._state.get(recipient)
        due = max(now + delay, state[0] if state is not None else now)
        self._state[recipient] = (due, now, self._burst)  # no burst until then
        self._maybe_sweep(now)

    def _maybe_sweep(self, now: float) -> None:
        # Amortised O(1): a full sweep only when the table has doubled since the last one.
        if len(self._state) < self._sweep_at:
            return
        self._state = {key: state for key, state in self._state.items() if state[0] > now}
        self._sweep_at = max(self._MIN_SWEEP, 2 * len(self._state))
