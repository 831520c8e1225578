"""At most one alert per key per window: a flapping breaker or a campaign held again and
again posts once, then again only after the window.

A key's window starts when its alert was handed to the sender (:meth:`AlertDedup.admit`
after the enqueue went through), not when it was first offered: an alert the full queue
dropped was never on its way, so it must not hold back the next one. An alert that
certainly reached no service is :meth:`forget`-ten: the condition may be raised again
(``sender.py`` says when).
"""

from __future__ import annotations

import time
from collections.abc import Callable

DEDUP_WINDOW_S = 600.0


class AlertDedup:
    """Remembers when each key was last let through, on an injected clock."""

    def __init__(
        self, window_s: float = DEDUP_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_s = window_s
        self._clock = clock
        self._last: dict[str, float] = {}

    def allows(self, key: str) -> bool:
        """Whether ``key`` may go now (its window is over or never began); changes nothing."""
        last = self._last.get(key)
        return last is None or self._clock() - last >= self.window_s

    def admit(self, key: str) -> None:
        """``key``'s window starts now: its alert is on its way."""
        now = self._clock()
        self._last[key] = now
        if len(self._last) > 1_000:  # keys of long-gone campaigns: forget the expired
            self._last = {k: t for k, t in self._last.items() if now - t < self.window_s}

    def ends_at(self, key: str) -> float | None:
        """When ``key``'s window ends (on the injected clock); None when it has none."""
        last = self._last.get(key)
        return None if last is None else last + self.window_s

    def forget(self, key: str) -> None:
        """``key``'s alert never arrived: the next one may go at once."""
        self._last.pop(key, None)
