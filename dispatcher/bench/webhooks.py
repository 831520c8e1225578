"""Benchmark: Meta's webhook endpoint under Meta's concurrency.

Meta's "Throughput" page sets the bar: an endpoint takes 3x the outgoing message rate in
statuses (1,000 msg/s sent = 3,000 statuses/s), delivered concurrently, with a median
latency under 250 ms and under 1 % over 1 s. This starts ``dispatcher serve`` (embedded
services, local Ray, the coordinator applying what arrives) and posts signed single-status
callbacks from another process over keep-alive connections:

- closed loop at 64, 256 and 512 connections: how many POSTs/s the API takes, latencies,
  errors (5xx, dropped connections) and 503s (refused with Retry-After: Meta retries);
- open loop at 3,000 POSTs/s (each connection on a schedule; latency from the scheduled
  time, so a slow answer is not hidden by the next request waiting for it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import multiprocessing
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from dispatcher.bench.serving import APP_SECRET, Served

LOAD_S = 6.0
CLOSED_LOOP = (64, 256, 512)
OPEN_LOOP_RATE = 3_000
OPEN_LOOP_CONNECTIONS = 256
BODIES = 1_000


@dataclass(frozen=True, slots=True)
class Load:
    port: int
    connections: int
    seconds: float
    rate: float | None = None
    """POSTs per second over all connections (open loop); None: as fast as answered."""


def _bodies() -> list[bytes]:
    now = int(time.time())
    out = []
    for i in range(BODIES):
        payload = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "bench-waba",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550000000",
                                    "phone_number_id": "bench-webhooks",
                                },
                                "statuses": [
                                    {
                                        "id": f"wamid.bench{i:08d}",
                                        "status": "delivered",
                                        "timestamp": str(now),
                                        "recipient_id": f"5511{i:09d}",
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
        out.append(orjson.dumps(payload))
    return out


def _requests(port: int) -> list[bytes]:
    requests = []
    for body in _bodies():
        signature = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        head = (
            f"POST /api/whatsapp/webhook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"X-Hub-Signature-256: sha256={signature}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


async def _connection(
    load: Load, index: int, requests: list[bytes], results: dict[str, Any], deadline: float
) -> None:
    """One keep-alive connection posting until ``deadline``; reconnects after a drop."""
    interval = load.connections / load.rate if load.rate else 0.0
    next_at = time.perf_counter() + (index * interval / load.connections if interval else 0)
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    n = index
    while time.perf_counter() < deadline:
        if interval:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            started = next_at
            next_at += interval
        else:
            started = time.perf_counter()
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", load.port)
            writer.write(requests[n % len(requests)])
            n += load.connections
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            results["dropped"] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        latency = time.perf_counter() - started
        if status == 200:
            results["latencies"].append(latency)
        elif status == 503:
            results["refused"] += 1
        elif status >= 500:
            results["errors"] += 1
        else:
            results["other"] += 1
    if writer is not None:
        writer.close()


def _run_load(load: Load, out: Any) -> None:
    """In its own process: the load generator must not share the API's core."""
    requests = _requests(load.port)
    results: dict[str, Any] = {"latencies": [], "dropped": 0, "errors": 0, "refused": 0}
    results["other"] = 0

    async def main() -> float:
        started = time.perf_counter()
        deadline = started + load.seconds
        await asyncio.gather(
            *(_connection(load, i, requests, results, deadline) for i in range(load.connections))
        )
        return time.perf_counter() - started

    results["elapsed"] = asyncio.run(main())
    out.send(results)


def _measure(load: Load) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_run_load, args=(load, child))
    process.start()
    results: dict[str, Any] = parent.recv()
    process.join(30)
    return results


def _row(table: Table, label: str, results: dict[str, Any]) -> None:
    latencies = sorted(results["latencies"])
    ok = len(latencies)

    def pct(q: float) -> str:
        return f"{latencies[min(ok - 1, int(q * ok))] * 1000:,.0f}" if ok else "-"

    over_1s = sum(1 for x in latencies if x > 1.0)
    table.add_row(
        label,
        f"{ok / results['elapsed']:,.0f}",
        pct(0.5),
        pct(0.99),
        f"{over_1s / ok:.2%}" if ok else "-",
        str(results["errors"] + results["other"]),
        str(results["dropped"]),
        str(results["refused"]),
    )


def run(console: Console) -> None:
    table = Table(title="Webhook endpoint: signed single-status POSTs (dispatcher serve)")
    for column in (
        "load",
        "POSTs/s taken",
        "p50 ms",
        "p99 ms",
        "over 1 s",
        "errors",
        "dropped",
        "503 (retry)",
    ):
        table.add_column(column, justify="right")
    with (
        tempfile.TemporaryDirectory(prefix="bench-wh-", dir="/tmp") as tmp,
        Served(Path(tmp)) as served,
    ):
        port = served.port
        for connections in CLOSED_LOOP:
            results = _measure(Load(port, connections, LOAD_S))
            _row(table, f"{connections} concurrent", results)
        results = _measure(Load(port, OPEN_LOOP_CONNECTIONS, LOAD_S, rate=OPEN_LOOP_RATE))
        _row(table, f"{OPEN_LOOP_RATE:,}/s scheduled", results)
    console.print(table)
    console.print(
        f"{os.cpu_count()} cores, API, coordinator (applying the statuses) and load generator "
        "on the same machine. errors: 5xx other than 503, and other unexpected answers; "
        "dropped: connections closed or reset without an answer; 503: refused past the "
        "intake's bound with Retry-After (Meta retries). Latency of the scheduled row is "
        "measured from each POST's scheduled time."
    )
