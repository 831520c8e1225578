"""Benchmark: a million recipients over REST, and a big campaign over two fast numbers.

Against ``dispatcher serve`` (embedded services, local Ray) and the sandbox, as a user
would drive it: recipients appended to a campaign as one streamed NDJSON upload, then a
campaign of ``CAMPAIGN_SIZE`` over two numbers of 1,000 msg/s each, with Meta's status
webhooks coming back to the API. Memory of the API process and of the coordinator actor is
read at the start, after the upload and while sending: it must stay flat (nothing is kept
per recipient in memory).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
import redis
from rich.console import Console
from rich.table import Table

from dispatcher.bench.serving import APP_SECRET, Served, free_port
from dispatcher.config import load_settings
from dispatcher.meta.tiers import MessagingTier
from dispatcher.sandbox.config import NumberConfig, PortfolioConfig, SandboxConfig, WebhookConfig
from dispatcher.sandbox.server import SandboxProcess
from dispatcher.services import Services, ServiceUrls

UPLOAD_ROWS = int(os.environ.get("BENCH_UPLOAD_ROWS", "1000000"))
CAMPAIGN_SIZE = int(os.environ.get("BENCH_CAMPAIGN_SIZE", "200000"))
NUMBERS = (("9101", 1_000), ("9102", 1_000))
TEMPLATE = {"name": "hello_world", "language": "en_US"}
API = "/api/whatsapp"


def _sandbox_config(webhook_url: str) -> SandboxConfig:
    return SandboxConfig(
        numbers=[
            NumberConfig(
                phone_number_id=pid, token=f"bench-{pid}", business_id="scale", throughput_mps=mps
            )
            for pid, mps in NUMBERS
        ],
        portfolios=[
            PortfolioConfig(business_id="scale", messaging_tier=MessagingTier.TIER_UNLIMITED)
        ],
        webhook=WebhookConfig(url=webhook_url, app_secret=APP_SECRET),
        max_records=10,
    )


def _lines(count: int, prefix: str) -> Iterator[bytes]:
    """NDJSON recipients in chunks of ~1,000 lines, as a streaming client sends them."""
    chunk: list[bytes] = []
    for i in range(count):
        chunk.append(orjson.dumps({"phone": f"+55{prefix}19{i:08d}"}) + b"\n")
        if len(chunk) == 1000:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


def _create(client: httpx.Client, name: str, instance_ids: list[str]) -> str:
    response = client.post(
        f"{API}/campaigns",
        json={"name": name, "template": TEMPLATE, "instance_ids": instance_ids},
    )
    response.raise_for_status()
    campaign_id: str = response.json()["id"]
    return campaign_id


def _append(client: httpx.Client, campaign_id: str, count: int, prefix: str) -> float:
    """Seconds to append ``count`` recipients in one streamed upload."""
    started = time.perf_counter()
    response = client.post(
        f"{API}/campaigns/{campaign_id}/recipients",
        content=_lines(count, prefix),
        headers={"Content-Type": "application/x-ndjson"},
        timeout=600,
    )
    response.raise_for_status()
    if response.json().get("added") != count:
        raise RuntimeError(f"upload answered {response.json()}")
    return time.perf_counter() - started


def _wait_completed(
    client: httpx.Client, campaign_id: str, timeout_s: float, served: Served
) -> tuple[float, dict[str, Any], float]:
    """Seconds until completed, the campaign, and the coordinator's peak RSS meanwhile."""
    started = time.perf_counter()
    peak = 0.0
    while time.perf_counter() - started < timeout_s:
        campaign: dict[str, Any] = client.get(f"{API}/campaigns/{campaign_id}").json()
        peak = max(peak, served.rss_mb("Coordinator"))
        if campaign["status"] in ("completed", "failed", "cancelled"):
            return time.perf_counter() - started, campaign, peak
        time.sleep(0.5)
    raise TimeoutError(f"campaign {campaign_id} not completed in {timeout_s:.0f}s")


class Costs:
    """What a stretch of work cost: CPU of our processes, Redis commands, Postgres work."""

    def __init__(self, served: Served, urls: ServiceUrls) -> None:
        self._served = served
        self._urls = urls

    def snapshot(self) -> dict[str, float]:
        figures = {
            "api_cpu": _cpu([self._served.pid()]),
            "coordinator_cpu": _cpu(self._served.actor_pids("Coordinator")),
            "instances_cpu": _cpu(self._served.actor_pids("InstanceActor")),
        }
        client = redis.Redis.from_url(self._urls.redis_url)
        try:
            stats: dict[str, Any] = client.info("commandstats")
        finally:
            client.close()
        figures["redis_commands"] = float(sum(v["calls"] for v in stats.values()))
        figures.update(asyncio.run(_postgres(self._urls.database_url)))
        return figures


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def _postgres(url: str) -> dict[str, float]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT sum(xact_commit) AS xacts, "
            "sum(tup_inserted + tup_updated + tup_deleted) AS written "
            "FROM pg_stat_database"
        )
    finally:
        await conn.close()
    assert row is not None  # noqa: S101 - an aggregate always answers one row
    return {"pg_transactions": float(row["xacts"]), "pg_rows_written": float(row["written"])}


def run(console: Console) -> None:
    rows: list[tuple[str, str]] = []
    memory: list[tuple[str, float, float]] = []
    sandbox_port = free_port()
    costs: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-", dir="/tmp") as tmp,
        Services(load_settings().model_copy(update={"data_dir": Path(tmp) / "services"})) as urls,
    ):
        served = Served(
            Path(tmp),
            {
                "META_GRAPH_URL": f"http://127.0.0.1:{sandbox_port}",
                "DISPATCHER_REDIS_URL": urls.redis_url,
                "DISPATCHER_DATABASE_URL": urls.database_url,
            },
        )
        sandbox = SandboxProcess(_sandbox_config(f"{served.url}{API}/webhook"), sandbox_port)
        with (
            sandbox,
            served,
            httpx.Client(base_url=served.url, headers=served.headers, timeout=60) as client,
        ):
            ids = []
            for pid, mps in NUMBERS:
                response = client.post(
                    f"{API}/instances",
                    json={
                        "phone_number_id": pid,
                        "access_token": f"bench-{pid}",
                        "business_id": "scale",
                        "throughput_mps": mps,
                    },
                    timeout=120,
                )
                response.raise_for_status()
                ids.append(response.json()["id"])
            memory.append(("start", served.rss_mb(), served.rss_mb("Coordinator")))

            big = _create(client, "bench upload", ids)
            upload_s = _append(client, big, UPLOAD_ROWS, "1")
            rows.append(
                (
                    f"{UPLOAD_ROWS:,} recipients appended (one NDJSON upload)",
                    f"{upload_s:.1f} s, {UPLOAD_ROWS / upload_s:,.0f} rows/s",
                )
            )
            memory.append((f"after {UPLOAD_ROWS:,}", served.rss_mb(), served.rss_mb("Coordinator")))
            client.post(f"{API}/campaigns/{big}/cancel").raise_for_status()

            campaign_id = _create(client, "bench send", ids)
            _append(client, campaign_id, CAMPAIGN_SIZE, "2")
            meter = Costs(served, urls)
            before = meter.snapshot()
            applied_before = _statuses_applied(client)
            client.post(f"{API}/campaigns/{campaign_id}/send").raise_for_status()
            ideal = CAMPAIGN_SIZE / sum(mps for _, mps in NUMBERS)
            elapsed, done, peak = _wait_completed(client, campaign_id, ideal * 10 + 120, served)
            time.sleep(3)  # the last statuses land
            after = meter.snapshot()
            costs = {key: after[key] - before[key] for key in after}
            costs["statuses"] = float(_statuses_applied(client) - applied_before)
            memory.append(("while sending (peak)", served.rss_mb(), peak))
            rows.append(
                (
                    f"{CAMPAIGN_SIZE:,} recipients over 2 x 1,000 msg/s",
                    f"{elapsed:.1f} s (ideal {ideal:.0f} s): {ideal / elapsed:.2f} of ideal, "
                    f"sent {done['total_sent']:,}, status {done['status']}",
                )
            )
            actors = served.rss_mb("InstanceActor")
    table = Table(title=f"Scale over REST ({os.cpu_count()} cores, everything on this machine)")
    table.add_column("what")
    table.add_column("measured", justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    mem = Table(title="Resident memory (MB)")
    for column in ("when", "API process", "coordinator actor"):
        mem.add_column(column, justify="right")
    for when, api, coordinator in memory:
        mem.add_row(when, f"{api:,.0f}", f"{coordinator:,.0f}")
    console.print(mem)
    if costs:
        per = Table(title=f"Cost per message ({CAMPAIGN_SIZE:,} sent), for the capacity plan")
        per.add_column("what")
        per.add_column("per message", justify="right")
        n = float(CAMPAIGN_SIZE)
        per.add_row("instance actor CPU", f"{costs['instances_cpu'] / n * 1e6:,.0f} µs")
        per.add_row("coordinator CPU", f"{costs['coordinator_cpu'] / n * 1e6:,.0f} µs")
        per.add_row(
            f"API CPU (webhooks: {costs['statuses'] / n:.1f} statuses a message)",
            f"{costs['api_cpu'] / n * 1e6:,.0f} µs",
        )
        per.add_row("Redis commands", f"{costs['redis_commands'] / n:.2f}")
        per.add_row("Postgres transactions", f"{costs['pg_transactions'] / n:.3f}")
        per.add_row("Postgres rows written", f"{costs['pg_rows_written'] / n:.2f}")
        console.print(per)
    console.print(
        f"instance actors at the end: {actors:,.0f} MB in total. On 2 cores the sandbox (Meta "
        "and its webhooks), the API, the coordinator, two instance actors, Redis and Postgres "
        "share the CPU: the send rate is bounded by CPU here, not by the dispatcher's pacing."
    )


def _statuses_applied(client: httpx.Client) -> int:
    """Statuses the coordinator applied from Meta's webhooks so far."""
    stats = client.get(f"{API}/queue/stats").json()
    return int(stats["routing"].get("webhook_statuses_applied") or 0)
