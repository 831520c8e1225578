"""Benchmark: what a fleet of registered numbers costs in Ray worker memory.

100 numbers registered, 10 of them sending a campaign: the resident memory of the Ray
processes that host our actors (the coordinator and the instance actors), registered only,
while the 10 send, and once their actors stopped for idleness. A number without work has
no actor, so the cost follows the numbers sending, not the numbers registered.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import ray
from rich.console import Console
from rich.table import Table

from dispatcher.config import load_settings
from dispatcher.meta.tiers import MessagingTier
from dispatcher.sandbox.config import NumberConfig, PortfolioConfig, SandboxConfig, WebhookConfig
from dispatcher.sandbox.server import SandboxProcess
from dispatcher.sdk import Dispatcher

REGISTERED = 100
SENDING = 10
MESSAGES = 1_600
"""Per sending number: 20 s at the default 80 msg/s."""
IDLE_STOP_S = 10.0
TEMPLATE = {"name": "hello_world", "language": "en_US"}


def _numbers() -> list[str]:
    return [f"8{i:03d}" for i in range(REGISTERED)]


def _sandbox_config() -> SandboxConfig:
    return SandboxConfig(
        numbers=[
            NumberConfig(phone_number_id=pid, token=f"bench-{pid}", business_id="bench-fleet")
            for pid in _numbers()
        ],
        portfolios=[
            PortfolioConfig(business_id="bench-fleet", messaging_tier=MessagingTier.TIER_UNLIMITED)
        ],
        webhook=WebhookConfig(url=None),
        max_records=50_000,
    )


def _actor_memory() -> dict[str, Any]:
    """Our actors alive now (Ray's GCS) and the resident memory of their processes."""
    instance_mb: list[float] = []
    other_mb = 0.0
    for actor in ray._private.state.actors().values():
        if actor["State"] != "ALIVE" or not actor.get("Pid"):
            continue
        try:
            rss = psutil.Process(actor["Pid"]).memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            continue
        if actor["ActorClassName"] == "InstanceActor":
            instance_mb.append(rss)
        else:
            other_mb += rss
    return {"instances": instance_mb, "other_mb": other_mb}


def run(console: Console) -> None:
    table = Table(title=f"{REGISTERED} registered numbers, {SENDING} sending (local Ray)")
    for column in (
        "phase",
        "instance actors",
        "their RSS MB",
        "MB per actor",
        "coordinator RSS MB",
        "total RSS MB",
    ):
        table.add_column(column, justify="right")

    def row(phase: str, memory: dict[str, Any]) -> None:
        mb = memory["instances"]
        table.add_row(
            phase,
            str(len(mb)),
            f"{sum(mb):,.0f}",
            f"{sum(mb) / len(mb):,.1f}" if mb else "-",
            f"{memory['other_mb']:,.0f}",
            f"{sum(mb) + memory['other_mb']:,.0f}",
        )

    with (
        tempfile.TemporaryDirectory(prefix="bench-") as data,
        SandboxProcess(_sandbox_config()) as sandbox,
    ):
        settings = load_settings().model_copy(
            update={
                "data_dir": Path(data),
                "graph_url": sandbox.url,
                "redis_url": "",
                "database_url": "",
                "instance_idle_stop_s": IDLE_STOP_S,
            }
        )
        with Dispatcher.connect(settings=settings) as dispatcher:
            ids = [
                dispatcher.register_instance(pid, f"bench-{pid}", "bench-fleet").id
                for pid in _numbers()
            ]
            row("registered", _actor_memory())
            campaigns = [
                dispatcher.create_campaign(
                    f"fleet {n}",
                    TEMPLATE,
                    [instance_id],
                    ({"phone": f"+55119{n:03d}{i:05d}"} for i in range(MESSAGES)),
                )
                for n, instance_id in enumerate(ids[:SENDING])
            ]
            for campaign in campaigns:
                dispatcher.send(campaign.id)
            # Mid-campaign, once every sending number's actor is up (a process start takes
            # seconds on a busy machine).
            deadline = time.monotonic() + MESSAGES / 80 / 2
            while len(_actor_memory()["instances"]) < SENDING and time.monotonic() < deadline:
                time.sleep(0.5)
            row(f"{SENDING} sending", _actor_memory())
            for campaign in campaigns:
                dispatcher.wait(campaign.id, progress=False, timeout_s=300)
            row("sent, actors idle", _actor_memory())
            deadline = time.monotonic() + IDLE_STOP_S * 6 + 30
            while _actor_memory()["instances"] and time.monotonic() < deadline:
                time.sleep(1.0)
            row(f"idle {IDLE_STOP_S:.0f} s later", _actor_memory())
    console.print(table)
    console.print(
        "RSS of the processes hosting our live actors (Ray's GCS lists them); Ray's own "
        "daemons (GCS, raylet, dashboard) are not counted. Before instance actors started "
        "with work, each registered number kept one (~130 MB) alive."
    )
