"""Benchmark: instance actors against the sandbox on local Ray.

One number at 80 and one at 1,000 msg/s: the rate achieved (goal: within 1 % of the limit)
and how many 130429 Meta would have answered (goal: 0). One number with no limit: sends/s,
the actor's CPU per message, its memory.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from dispatcher.bench.local import actor_stats, local_dispatcher
from dispatcher.meta.tiers import MessagingTier
from dispatcher.sandbox.config import NumberConfig, PortfolioConfig, SandboxConfig, WebhookConfig

SCENARIOS = [
    # phone_number_id, limit msg/s, messages
    ("7080", 80, 80 * 15),
    ("7100", 1_000, 1_000 * 15),
    ("7999", 100_000, 30_000),
]
TEMPLATE = {"name": "hello_world", "language": "en_US"}


def _sandbox_config() -> SandboxConfig:
    return SandboxConfig(
        numbers=[
            NumberConfig(
                phone_number_id=pid, token=f"bench-{pid}", business_id="bench", throughput_mps=mps
            )
            for pid, mps, _ in SCENARIOS
        ],
        portfolios=[
            PortfolioConfig(business_id="bench", messaging_tier=MessagingTier.TIER_UNLIMITED)
        ],
        webhook=WebhookConfig(url=None),
        max_records=200_000,
    )


def _accepted(sandbox_url: str, pid: str) -> int:
    numbers = httpx.get(f"{sandbox_url}/_sandbox/audit").json()["numbers"]
    return int(numbers.get(pid, {}).get("accepted", 0))


def _achieved(records: list[dict[str, Any]], pid: str) -> float:
    times: list[float] = sorted(
        r["t"] for r in records if r["phone_number_id"] == pid and r["status"] == 200
    )
    if len(times) < 10:
        return 0.0
    # The steady state: the middle 90 % of the sends (the first batch's start-up and the
    # last batch's tail are the coordinator's latency, not the pace).
    lo, hi = len(times) // 20, len(times) - len(times) // 20
    return (hi - lo - 1) / (times[hi - 1] - times[lo])


def run(console: Console) -> None:
    table = Table(title="Instance actors against the sandbox (local Ray, embedded services)")
    for column in (
        "number",
        "limit msg/s",
        "messages",
        "achieved msg/s",
        "of limit",
        "130429",
        "max in any 1 s",
        "actor CPU µs/msg",
        "actor RSS MB",
    ):
        table.add_column(column, justify="right")
    with local_dispatcher(_sandbox_config()) as (dispatcher, sandbox_url):
        for pid, limit, count in SCENARIOS:
            instance = dispatcher.register_instance(
                pid, f"bench-{pid}", "bench", throughput_mps=limit
            )
            campaign = dispatcher.create_campaign(
                f"bench {pid}",
                TEMPLATE,
                [instance.id],
                ({"phone": f"+55719{pid[1:]}{i:05d}"} for i in range(count)),
            )
            started = time.perf_counter()
            dispatcher.send(campaign.id)
            # Actors start with work (lazily): the number's actor exists only once the send
            # routed its first batch. Its CPU is sampled from then on, over the messages the
            # sandbox accepted from then on (its start-up, imports included, is not counted).
            stats = actor_stats(dispatcher, str(instance.id))
            process = psutil.Process(stats["pid"])
            cpu_before = sum(process.cpu_times()[:2])
            accepted_before = _accepted(sandbox_url, pid)
            dispatcher.wait(campaign.id, progress=False, timeout_s=count / limit * 3 + 60)
            elapsed = time.perf_counter() - started
            cpu = sum(process.cpu_times()[:2]) - cpu_before
            stats = actor_stats(dispatcher, str(instance.id))
            audit = httpx.get(f"{sandbox_url}/_sandbox/audit").json()["numbers"][pid]
            records = httpx.get(
                f"{sandbox_url}/_sandbox/requests", params={"limit": 200_000}, timeout=60
            ).json()
            achieved = _achieved(records, pid) if limit < 100_000 else count / elapsed
            table.add_row(
                pid,
                f"{limit:,}" if limit < 100_000 else "none",
                f"{count:,}",
                f"{achieved:,.1f}",
                f"{achieved / limit:.2%}" if limit < 100_000 else "-",
                str(audit["errors"].get("130429", 0)),
                str(audit["max_received_per_s"]),
                f"{cpu / max(1, audit['accepted'] - accepted_before) * 1e6:,.0f}",
                f"{stats.get('rss_mb', 0):,.0f}",
            )
    console.print(table)
    console.print(
        "achieved msg/s: accepted sends per second over the middle 90 % of the run, as the "
        "sandbox saw them (the unthrottled row: messages over the campaign's wall time, "
        "database writes included)."
    )
