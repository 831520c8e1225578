"""Adaptive send rate (AIMD): cut multiplicatively on throttle errors, creep back up additively."""

from __future__ import annotations

import time
from dataclasses import dataclass

from dispatcher.meta.error_codes import Throttle
from dispatcher.policies import Clock


@dataclass(frozen=True, slots=True)
class AdaptiveRateConfig:
    """Tunables of :class:`AdaptiveRate`; rates in messages per second."""

    decrease_factor: float = 0.5
    """A throughput or API-call throttle multiplies the rate by this."""
    hard_decrease_factor: float = 0.1
    """A spam-rate throttle (131048) multiplies the rate by this."""
    min_rate_mps: float = 1.0
    increase_step_mps: float | None = None
    """Added per increase interval; None means 5 % of the ceiling."""
    increase_interval_s: float = 1.0
    quiet_period_s: float = 10.0
    """No increase until this long after the last cut."""
    cut_cooldown_s: float = 1.0
    """Throttle errors within this long after a cut are answers to sends made before it
    took effect: they do not cut again, or one burst would drive the rate to the floor."""


class AdaptiveRate:
    """The send rate a number should use now, between a floor and the configured ceiling."""

    __slots__ = ("_ceiling", "_clock", "_config", "_last_cut_at", "_next_increase_at", "_rate")

    def __init__(
        self,
        ceiling_mps: float,
        config: AdaptiveRateConfig | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._config = config or AdaptiveRateConfig()
        if not 0 < self._config.hard_decrease_factor <= self._config.decrease_factor < 1:
            raise ValueError("need 0 < hard_decrease_factor <= decrease_factor < 1")
        self._clock = clock
        self._ceiling = self._check_ceiling(ceiling_mps)
        self._rate = self._ceiling
        self._last_cut_at: float | None = None
        self._next_increase_at = clock()

    @property
    def ceiling(self) -> float:
        """The configured rate; never exceeded."""
        return self._ceiling

    @property
    def floor(self) -> float:
        """The rate is never cut below this (nor above the ceiling)."""
        return min(self._config.min_rate_mps, self._ceiling)

    def rate(self) -> float:
        """The rate to use now: the last cut, plus the increases earned since."""
        now = self._clock()
        if self._rate < self._ceiling and now >= self._next_increase_at:
            interval = self._config.increase_interval_s
            steps = 1 + int((now - self._next_increase_at) // interval)
            self._rate = min(self._ceiling, self._rate + steps * self._step())
            self._next_increase_at += steps * interval
        return self._rate

    def on_throttle(self, kind: Throttle) -> float:
        """React to a throttle error and return the new rate; pair throttles change nothing."""
        if kind is Throttle.PAIR:
            return self.rate()
        now = self._clock()
        current = self.rate()
        hard = kind is Throttle.SPAM
        recent = (
            self._last_cut_at is not None and now - self._last_cut_at < self._config.cut_cooldown_s
        )
        if recent and not hard:
            self._next_increase_at = now + self._config.quiet_period_s
            return current
        factor = self._config.hard_decrease_factor if hard else self._config.decrease_factor
        self._rate = max(self.floor, current * factor)
        self._last_cut_at = now
        self._next_increase_at = now + self._config.quiet_period_s
        return self._rate

    def set_ceiling(self, ceiling_mps: float) -> None:
        """Change the configured rate (a tier or throughput change); the rate follows a cut."""
        self._ceiling = self._check_ceiling(ceiling_mps)
        self._rate = min(max(self._rate, self.floor), self._ceiling)

    def _step(self) -> float:
        step = self._config.increase_step_mps
        return self._ceiling * 0.05 if step is None else step

    @staticmethod
    def _check_ceiling(ceiling_mps: float) -> float:
        if not ceiling_mps > 0:
            raise ValueError(f"ceiling must be > 0 messages/s, got {ceiling_mps}")
        return float(ceiling_mps)
