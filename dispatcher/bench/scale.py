"""Benchmark: a million recipients over REST, and a big campaign over two fast numbers.

Against ``dispatcher serve`` (embedded services, local Ray) and the sandbox, as a user
would drive it: recipients appended to a campaign as one streamed NDJSON upload, then a
campaign of ``CAMPAIGN_SIZE`` over two numbers of 1,000 msg/s each, with Meta's status
webhooks coming back to the API. Memory of the API process and of the coordinator actor is
read at the start, after the upload and while sending: it must stay flat (nothing is kept
per recipient in memory).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.table import Table

from dispatcher.bench.serving import APP_SECRET, Served, free_port
from dispatcher.meta.tiers import MessagingTier
from dispatcher.sandbox.config import NumberConfig, PortfolioConfig, SandboxConfig, WebhookConfig
from dispatcher.sandbox.server import SandboxProcess

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
        chunk.append(orjson.dumps({"phone": f"+55{prefix}{i:08d}"}) + b"\n")
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


def run(console: Console) -> None:
    rows: list[tuple[str, str]] = []
    memory: list[tuple[str, float, float]] = []
    sandbox_port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir="/tmp") as tmp:
        served = Served(Path(tmp), {"META_GRAPH_URL": f"http://127.0.0.1:{sandbox_port}"})
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
            client.post(f"{API}/campaigns/{campaign_id}/send").raise_for_status()
            ideal = CAMPAIGN_SIZE / sum(mps for _, mps in NUMBERS)
            elapsed, done, peak = _wait_completed(client, campaign_id, ideal * 10 + 120, served)
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
    console.print(
        f"instance actors at the end: {actors:,.0f} MB in total. On 2 cores the sandbox (Meta "
        "and its webhooks), the API, the coordinator, two instance actors, Redis and Postgres "
        "share the CPU: the send rate is bounded by CPU here, not by the dispatcher's pacing."
    )
