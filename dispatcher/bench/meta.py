"""Benchmark: Meta client sends/s per HTTP transport against the sandbox, and the sandbox's own
ceiling. The sandbox runs in its own process (one core), the client in this one (the other)."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from dispatcher.meta.client import MetaClient
from dispatcher.meta.messages import SendOk, Template
from dispatcher.meta.tiers import MessagingTier
from dispatcher.meta.transport import PoolConfig, TransportKind
from dispatcher.sandbox.config import (
    NumberConfig,
    PortfolioConfig,
    SandboxConfig,
    WebhookConfig,
)
from dispatcher.sandbox.server import SandboxProcess

SENDS = 6_000
CONCURRENCY = (8, 64)
TEMPLATE = Template("hello_world", "en_US")


def unthrottled_config() -> SandboxConfig:
    """One number with no practical throughput limit in an unlimited portfolio."""
    return SandboxConfig(
        numbers=[
            NumberConfig(
                phone_number_id="9001",
                token="bench-token",  # noqa: S106 - a sandbox number's made-up token
                business_id="bench-biz",
                throughput_mps=10_000_000,
            )
        ],
        portfolios=[
            PortfolioConfig(business_id="bench-biz", messaging_tier=MessagingTier.TIER_UNLIMITED)
        ],
        webhook=WebhookConfig(url=None),
        max_records=0,
    )


async def _run(
    url: str, kind: TransportKind, concurrency: int, offset: int
) -> tuple[float, float, int]:
    """(sends/s wall, sends per CPU-second of this process, successes)."""
    client = MetaClient(
        url, "v23.0", transport_kind=kind, pool=PoolConfig(max_connections=concurrency)
    )
    next_index = iter(range(offset, offset + SENDS))
    ok = 0

    async def worker() -> None:
        nonlocal ok
        for i in next_index:
            result = await client.send_template(
                "9001", "bench-token", f"+55{11_000_000_000 + i}", TEMPLATE, None, str(i)
            )
            ok += isinstance(result, SendOk)

    await client.send_template("9001", "bench-token", "+5511000000000", TEMPLATE)  # warm up
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await client.aclose()
    return SENDS / wall, SENDS / max(cpu, 1e-9), ok


def run(console: Console) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        pass
    table = Table(title=f"Meta client against the sandbox ({SENDS:,} template sends per row)")
    for column in (
        "transport",
        "concurrency",
        "sends/s",
        "sends per client CPU-s",
        "ok",
        "sandbox req per its CPU-s",
    ):
        table.add_column(column, justify="right")
    with SandboxProcess(unthrottled_config()) as sandbox:
        sandbox_proc = psutil.Process(_child_pid(sandbox))
        offset = 0
        for kind in (TransportKind.AIOHTTP, TransportKind.HTTPX_AIOHTTP, TransportKind.HTTPX):
            for concurrency in CONCURRENCY:
                before = sum(sandbox_proc.cpu_times()[:2])
                rate, per_cpu, ok = asyncio.run(_run(sandbox.url, kind, concurrency, offset))
                sandbox_cpu = sum(sandbox_proc.cpu_times()[:2]) - before
                offset += SENDS + 1
                table.add_row(
                    kind.value,
                    str(concurrency),
                    f"{rate:,.0f}",
                    f"{per_cpu:,.0f}",
                    f"{ok:,}",
                    f"{(SENDS + 1) / max(sandbox_cpu, 1e-9):,.0f}",
                )
        audit = httpx.get(f"{sandbox.url}/_sandbox/audit").json()
    console.print(table)
    console.print(
        f"sandbox audit: {audit['accepted']:,} accepted, {audit['duplicate_sends']} duplicates; "
        f"{os.cpu_count()} cores. 'sends per client CPU-s' is the per-core throughput of the "
        "client; 'sandbox req per its CPU-s' is the sandbox's ceiling on one core."
    )


def _child_pid(sandbox: SandboxProcess) -> int:
    process = sandbox._process
    if process is None:
        raise RuntimeError("sandbox not started")
    return process.pid
