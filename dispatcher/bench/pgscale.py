"""Benchmark: every hot-path statement's plan on Postgres at 10 million recipients.

``make bench-scale`` (``python -m dispatcher.bench pgscale``; not part of ``make bench``: the
fill alone takes minutes). Fills a throwaway database on the configured (or embedded) server
(``dispatcher/bench/pg_data.py``), then reads the plan of each statement of
``dispatcher/store/hot_paths.py``: the custom plan executed (``EXPLAIN ANALYZE``, writes
rolled back) and the generic one. Fails (exit status 1) when one reads the recipients or the
contacts table sequentially. ``BENCH_SCALE_ROWS`` sets another size.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

from rich.console import Console
from rich.table import Table

from dispatcher.bench.pg_data import fill
from dispatcher.config import load_settings
from dispatcher.services import Services
from dispatcher.store.db import connect, create_database, drop_database
from dispatcher.store.hot_paths import HotPathPlan, plan_hot_paths
from dispatcher.store.migrate import migrate
from dispatcher.store.plans import PlanSummary

ROWS = 10_000_000


def _index(plan: PlanSummary) -> str:
    if plan.scans_big_table:
        return "SEQ SCAN " + ", ".join(plan.seq_scans)
    short = (i.removeprefix("whatsapp_").removeprefix("campaign_") for i in plan.indexes)
    return ", ".join(short) or "-"


async def _measure(server_url: str, rows: int, console: Console) -> tuple[float, list[HotPathPlan]]:
    name = f"dispatcher_scale_{uuid.uuid4().hex[:8]}"
    url = await create_database(server_url, name)
    try:
        conn = await connect(url)
        try:
            await migrate(conn)
            started = time.perf_counter()
            sample = await fill(conn, rows, lambda step: console.log(f"fill: {step}"))
            filled = time.perf_counter() - started
            size = await conn.fetchval(
                "SELECT pg_size_pretty(pg_database_size(current_database()))"
            )
            console.log(f"filled {rows:,} recipients in {filled:.0f}s ({size})")
            return filled, await plan_hot_paths(conn, sample)
        finally:
            await conn.close()
    finally:
        await drop_database(server_url, name)


def run(console: Console) -> None:
    rows = int(os.environ.get("BENCH_SCALE_ROWS", ROWS))
    with Services(load_settings()) as urls:
        filled, plans = asyncio.run(_measure(urls.database_url, rows, console))
    table = Table(title=f"Hot-path plans at {rows:,} recipients (filled in {filled:.0f}s)")
    numbers = ("est. rows", "discarded", "ms")
    for column in ("statement", "root", "index (custom plan)", *numbers, "generic plan"):
        table.add_column(column, justify="right" if column in numbers else "left")
    for plan in plans:
        name = plan.path.name + (f" [{plan.path.owner}]" if plan.path.owner else "")
        ms = plan.custom.actual_ms
        table.add_row(
            name,
            plan.custom.root,
            _index(plan.custom),
            f"{plan.custom.estimated_rows:,.0f}",
            f"{plan.custom.rows_discarded:,}",
            "-" if ms is None else f"{ms:,.1f}",
            "same" if plan.generic.indexes == plan.custom.indexes else _index(plan.generic),
        )
    console.print(table)
    bad = [plan.path.name for plan in plans if plan.scans_big_table]
    if bad:
        console.print(f"[red]sequential scans of a big table: {', '.join(bad)}[/red]")
        raise SystemExit(1)
