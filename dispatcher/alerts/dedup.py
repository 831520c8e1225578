"""At most one alert per key per window: a flapping breaker or a campaign held again and
again posts once, then again only after the window."""

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

    def admit(self, key: str) -> bool:
        """True (and the key's window starts now) unless ``key`` was admitted within it."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.window_s:
            return False
        self._last[key] = now
        if len(self._last) > 1_000:  # keys of long-gone campaigns: forget the expired
            self._last = {k: t for k, t in self._last.items() if now - t < self.window_s}
        return True
