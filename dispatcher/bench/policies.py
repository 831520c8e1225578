"""Benchmark: decisions per second of each rate-control policy (the per-message overhead)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from dispatcher.meta.error_codes import ErrorTable
from dispatcher.policies.adaptive_rate import AdaptiveRate
from dispatcher.policies.backoff import Backoff
from dispatcher.policies.circuit_breaker import CircuitBreaker
from dispatcher.policies.messaging_limit import MessagingLimitGate
from dispatcher.policies.pair_rate import PairRateGuard
from dispatcher.policies.token_bucket import TokenBucket

N = 200_000


class _Clock:
    """Advances 1 ms per reading: every policy sees time move, none of them sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def _rate(name: str, run: Callable[[int], None]) -> tuple[str, float]:
    start = time.perf_counter()
    run(N)
    return name, N / (time.perf_counter() - start)


def _policies() -> list[tuple[str, float]]:
    recipients = [f"+5511{9000_0000 + i}" for i in range(N)]

    def bucket(n: int) -> None:
        b = TokenBucket(rate=1e9, burst=1e9, clock=_Clock())
        for _ in range(n):
            b.try_acquire()

    def aimd(n: int) -> None:
        a = AdaptiveRate(1000.0, clock=_Clock())
        for _ in range(n):
            a.rate()

    def pair(n: int) -> None:
        g = PairRateGuard(clock=_Clock())
        for i in range(n):
            g.try_acquire(recipients[i])

    def breaker(n: int) -> None:
        c = CircuitBreaker(clock=_Clock())
        for _ in range(n):
            c.try_acquire()
            c.record(None)

    def gate(n: int) -> None:
        g = MessagingLimitGate(100_000, clock=_Clock())
        for start in range(0, n, 500):
            g.reserve(recipients[start : start + 500])

    def classify(n: int) -> None:
        table = ErrorTable()
        codes = [130429, 131026, 190, 131000, 132001]
        for i in range(n):
            table.classify(codes[i % 5])

    def backoff(n: int) -> None:
        b = Backoff(rng=random.Random(1))  # noqa: S311 - seeded jitter for a benchmark
        for i in range(n):
            b.next_delay(i % 5, 1.0)

    return [
        _rate("token bucket try_acquire", bucket),
        _rate("adaptive rate read", aimd),
        _rate("pair-rate guard try_acquire (all new recipients)", pair),
        _rate("circuit breaker acquire + record", breaker),
        _rate("messaging-limit gate reserve (batches of 500)", gate),
        _rate("error table classify", classify),
        _rate("backoff next_delay", backoff),
    ]


def run(console: Console) -> None:
    table = Table(title=f"Rate-control policies: decisions per second ({N:,} each, one core)")
    table.add_column("policy")
    table.add_column("decisions/s", justify="right")
    for name, rate in _policies():
        table.add_row(name, f"{rate:,.0f}")
    console.print(table)
