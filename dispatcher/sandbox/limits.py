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
    """Messages from one number to one customer: ``burst`` at once, then one per interval."""

    __slots__ = ("_burst", "_interval", "_sent")

    def __init__(self, interval_s: float, burst: int) -> None:
        self._interval = interval_s
        self._burst = burst
        self._sent: dict[str, deque[float]] = {}

    def allow(self, recipient: str, now: float) -> bool:
        """Record and allow, or refuse: at most ``burst`` sends in any ``burst * interval``."""
        horizon = self._burst * self._interval
        sent = self._sent.get(recipient)
        if sent is None:
            sent = self._sent[recipient] = deque()
        while sent and sent[0] <= now - horizon:
            sent.popleft()
        if len(sent) >= self._burst:
            return False
        sent.append(now)
        if len(self._sent) > 100_000:
            self._prune(now - horizon)
        return True

    def _prune(self, before: float) -> None:
        self._sent = {r: s for r, s in self._sent.items() if s and s[-1] > before}


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
