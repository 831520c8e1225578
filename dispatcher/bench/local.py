"""A deployment for the benchmarks: local Ray, embedded Redis and Postgres, the sandbox."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dispatcher.config import load_settings
from dispatcher.sandbox.config import SandboxConfig
from dispatcher.sandbox.server import SandboxProcess
from dispatcher.sdk import Dispatcher


@contextmanager
def local_dispatcher(sandbox_config: SandboxConfig) -> Iterator[tuple[Dispatcher, str]]:
    """The driver SDK over a fresh local deployment talking to a sandbox; its URL."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as data,
        SandboxProcess(sandbox_config) as sandbox,
    ):
        settings = load_settings().model_copy(
            update={
                "data_dir": Path(data),
                "graph_url": sandbox.url,
                "redis_url": "",
                "database_url": "",
            }
        )
        with Dispatcher.connect(settings=settings) as dispatcher:
            yield dispatcher, sandbox.url


def actor_stats(dispatcher: Dispatcher, instance_id: str) -> dict[str, Any]:
    """The instance actor's stats once it reported them (it runs)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stats: dict[str, Any] = dispatcher.stats()["instances"].get(instance_id, {})
        # A number without an actor (lazy: not started yet) shows ``pid: None``.
        if stats.get("pid"):
            return stats
        time.sleep(0.2)
    raise TimeoutError(f"instance actor {instance_id} did not report its stats")
