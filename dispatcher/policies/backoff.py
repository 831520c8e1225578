"""Retry delays with decorrelated jitter (the AWS architecture blog's variant)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Backoff:
    """``sleep = min(cap, uniform(base, previous * 3))`` for at most ``max_attempts`` attempts.

    Attempts count sends: attempt 1 is the first send, so a message gets
    ``max_attempts - 1`` retries. Jitter spreads retries of many messages failed at once.
    """

    base_s: float = 0.5
    cap_s: float = 60.0
    max_attempts: int = 6
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.cap_s:
            raise ValueError(f"need 0 < base_s <= cap_s, got {self.base_s}, {self.cap_s}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    def next_delay(self, attempts: int, previous_s: float | None = None) -> float | None:
        """Seconds to wait after ``attempts`` failed sends, or None when no attempt is left.

        ``previous_s`` is the delay used before the last attempt (None after the first).
        """
        if attempts >= self.max_attempts:
            return None
        previous = self.base_s if previous_s is None else max(previous_s, self.base_s)
        return min(self.cap_s, self.rng.uniform(self.base_s, previous * 3))
