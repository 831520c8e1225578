"""Per-recipient pacing: Meta tolerates about one message every 6 s to the same customer."""

from __future__ import annotations

import time

from dispatcher.policies import Clock


class PairRateGuard:
    """At most ``burst`` messages at once and one per ``interval_s`` after, per recipient.

    A generic cell rate algorithm: each recipient has a theoretical arrival time (TAT); a
    send is allowed when the TAT is no more than ``(burst - 1) * interval_s`` ahead of now.
    A recipient whose TAT has passed holds no state, so memory is bounded by the recipients
    sent to within the last ``burst * interval_s`` seconds (plus penalised ones).
    """

    __slots__ = ("_clock", "_interval", "_sweep_at", "_tat", "_tolerance")

    _MIN_SWEEP = 1024

    def __init__(
        self, interval_s: float = 6.0, burst: int = 1, clock: Clock = time.monotonic
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self._interval = float(interval_s)
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._sweep_at = self._MIN_SWEEP

    def __len__(self) -> int:
        """Recipients currently tracked."""
        return len(self._tat)

    def try_acquire(self, recipient: str) -> float:
        """Record a send to ``recipient`` and return 0.0, or return the seconds to wait."""
        now = self._clock()
        tat = self._tat.get(recipient, now)
        if tat < now:
            tat = now
        wait = tat - self._tolerance - now
        if wait > 0:
            return wait
        self._tat[recipient] = tat + self._interval
        self._maybe_sweep(now)
        return 0.0

    def wait_time(self, recipient: str) -> float:
        """Seconds until ``recipient`` may be sent to; records nothing."""
        now = self._clock()
        tat = self._tat.get(recipient, now)
        return max(0.0, tat - self._tolerance - now)

    def refund(self, recipient: str) -> None:
        """Give back the last send to ``recipient``: it never reached the customer (Meta
        answered 5xx before taking it)."""
        tat = self._tat.get(recipient)
        if tat is not None:
            self._tat[recipient] = max(self._clock(), tat - self._interval)

    def penalize(self, recipient: str, delay_s: float | None = None) -> None:
        """Meta said 131056 for ``recipient``: hold it for ``delay_s`` (default one interval)."""
        now = self._clock()
        delay = self._interval if delay_s is None else delay_s
        blocked_until = now + delay + self._tolerance
        self._tat[recipient] = max(self._tat.get(recipient, now), blocked_until)
        self._maybe_sweep(now)

    def _maybe_sweep(self, now: float) -> None:
        # Amortised O(1): a full sweep only when the table has doubled since the last one.
        if len(self._tat) < self._sweep_at:
            return
        self._tat = {key: tat for key, tat in self._tat.items() if tat > now}
        self._sweep_at = max(self._MIN_SWEEP, 2 * len(self._tat))
