"""Meta's limits as the sandbox enforces them: written apart from ``dispatcher.policies``.

The sandbox is the judge of the dispatcher's policies, so it does not reuse them: a bug
shared by both would pass every audit. These are the plain, obvious algorithms.
"""

from __future__ import annotations

from collections import deque


class SlidingWindowCounter:
    """Events in the last ``window_s`` (half-open: an event exactly ``window_s`` ago is out)."""

    __slots__ = ("_events", "_window", "peak")

    def __init__(self, window_s: float) -> None:
        self._window = window_s
        self._events: deque[float] = deque()
        self.peak = 0
        """The most events ever seen inside one window."""

    def count(self, now: float) -> int:
        events = self._events
        while events and events[0] <= now - self._window:
            events.popleft()
        return len(events)

    def add(self, now: float) -> int:
        """Record an event; the count in the window including it."""
        count = self.count(now) + 1
        self._events.append(now)
        self.peak = max(self.peak, count)
        return count


class PairLimiter:
    """Messages from one number to one customer, as Meta states the pair rate limit
    ("Throughput", pair rate limits:
    https://developers.facebook.com/docs/whatsapp/cloud-api/overview#pair-rate-limits):
    one message every ``interval_s`` (6 s); a burst of up to ``burst`` (45) within one
    interval is tolerated but borrows from the future, each message one interval (a burst
    of 20 means about 2 minutes before the next); above it, 131056.
    """

    __slots__ = ("_burst", "_interval", "_pairs")

    def __init__(self, interval_s: float, burst: int) -> None:
        self._interval = interval_s
        self._burst = burst
        self._pairs: dict[str, list[float]] = {}
        """recipient -> [repaid at, burst started at, messages in the burst]"""

    def allow(self, recipient: str, now: float) -> bool:
        """Record and allow, or refuse (Meta's 131056)."""
        pair = self._pairs.get(recipient)
        if pair is None or pair[0] <= now:  # nothing owed: a new burst may start
            self._pairs[recipient] = [now + self._interval, now, 1]
            if len(self._pairs) > 100_000:
                self._prune(now)
            return True
        repaid_at, started_at, count = pair
        if now - started_at < self._interval and count < self._burst:
            pair[0] = repaid_at + self._interval
            pair[2] = count + 1
            return True
        return False

    def _prune(self, now: float) -> None:
        self._pairs = {r: p for r, p in self._pairs.items() if p[0] > now}


class UniqueRecipientWindow:
    """Unique recipients with a delivered send in the moving window of one portfolio."""

    __slots__ = ("_last", "_sends", "_window", "peak")

    def __init__(self, window_s: float) -> None:
        self._window = window_s
        self._sends: deque[tuple[float, str]] = deque()
        self._last: dict[str, float] = {}
        self.peak = 0

    def unique(self, now: float) -> int:
        sends, last = self._sends, self._last
        while sends and sends[0][0] <= now - self._window:
            at, recipient = sends.popleft()
            if last.get(recipient) == at:
                del last[recipient]
        return len(last)

    def contains(self, recipient: str, now: float) -> bool:
        self.unique(now)
        return recipient in self._last

    def add(self, recipient: str, now: float) -> None:
        self.unique(now)
        self._sends.append((now, recipient))
        self._last[recipient] = now
        self.peak = max(self.peak, len(self._last))
