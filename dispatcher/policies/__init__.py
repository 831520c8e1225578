"""Pure rate-control policies: no I/O, time from an injected clock, state in memory."""

from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds on a monotonic scale; ``time.monotonic`` in production, a fake in tests."""
