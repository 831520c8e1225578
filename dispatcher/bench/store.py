"""Benchmark: what the store and the queue sustain (rows per second, one connection each).

Runs on the configured servers, or embedded ones started for the run, in a throwaway
database and under a throwaway Redis key prefix.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from dispatcher.config import load_settings
from dispatcher.queue.connection import connect_redis
from dispatcher.queue.streams import WorkQueue
from dispatcher.services import Services
from dispatcher.store import Store
from dispatcher.store.db import create_database, drop_database
from dispatcher.store.models import (
    CampaignStatus,
    NewRecipient,
    RecipientStatus,
    SendOutcome,
    SendResult,
    StatusUpdate,
)

INGEST_ROWS = 200_000
UPDATE_ROWS = 50_000
BATCH = 500
QUEUE_BATCHES = 2_000

Row = tuple[str, float, str, str]


async def _timed(name: str, rows: int, goal: str, run: Callable[[], Awaitable[object]]) -> Row:
    start = time.perf_counter()
    await run()
    elapsed = time.perf_counter() - start
    return name, rows / elapsed, f"{elapsed:.2f}s", goal


async def _store_rows(store: Store) -> list[Row]:
    instance = await store.instances.upsert(f"bench-{uuid.uuid4().hex[:8]}", "bench-biz", "t")
    template = {"name": "bench", "language": {"code": "en"}, "components": []}
    campaign = await store.campaigns.create("bench", template, [instance.id])
    await store.campaigns.transition(campaign.id, CampaignStatus.RUNNING)

    async def recipients() -> AsyncIterator[NewRecipient]:
        for i in range(INGEST_ROWS):
            yield NewRecipient(phone=f"+55119{i:08d}", variables={"name": f"customer {i}"})

    claimed: list[tuple[int, list[int]]] = []
    sent_ids: list[int] = []
    now = datetime.now(UTC)

    async def ingest() -> None:
        await store.recipients.ingest(campaign.id, recipients())

    async def claim() -> None:
        while (c := await store.recipients.claim_pending(campaign.id, BATCH)) is not None:
            claimed.append((c.claim_id, [r.id for r in c.recipients]))
            if len(claimed) * BATCH >= UPDATE_ROWS:
                return

    async def mark() -> None:
        for claim_id, ids in claimed:
            await store.recipients.mark_sending(claim_id, ids, instance.id)
            sent_ids.extend(ids)

    async def results() -> None:
        for k in range(0, len(sent_ids), BATCH):
            await store.outcomes.apply_results(
                [
                    SendResult(i, SendOutcome.SENT, now, instance.id, 1, f"wamid.{i}")
                    for i in sent_ids[k : k + BATCH]
                ]
            )

    async def statuses() -> None:
        for k in range(0, len(sent_ids), BATCH):
            await store.outcomes.apply_statuses(
                [
                    StatusUpdate(RecipientStatus.DELIVERED, now, f"wamid.{i}")
                    for i in sent_ids[k : k + BATCH]
                ]
            )

    return [
        await _timed("recipients ingested (staged, one COPY)", INGEST_ROWS, ">= 100,000/s", ingest),
        await _timed(f"recipients claimed (batches of {BATCH})", UPDATE_ROWS, "", claim),
        await _timed("recipients marked sending", UPDATE_ROWS, "", mark),
        await _timed("send results applied (sent)", UPDATE_ROWS, ">= 20,000/s", results),
        await _timed("webhook statuses applied (by wamid)", UPDATE_ROWS, ">= 20,000/s", statuses),
    ]


async def _queue_rows(queue: WorkQueue) -> list[Row]:
    batch = {
        "campaign_id": str(uuid.uuid4()),
        "claim_id": 1,
        "recipients": [{"id": i, "phone": f"+55119{i:08d}", "variables": {}} for i in range(BATCH)],
    }

    async def enqueue() -> None:
        for _ in range(QUEUE_BATCHES // 100):
            await queue.enqueue_many("bench", [batch] * 100)

    async def consume() -> None:
        while jobs := await queue.read("bench", "bench", count=50):
            for job in jobs:
                await queue.ack("bench", job.job_id)

    return [
        await _timed(f"batches enqueued ({BATCH} recipients)", QUEUE_BATCHES, "", enqueue),
        await _timed("batches read + acked", QUEUE_BATCHES, "", consume),
    ]


async def _measure(database_url: str, redis_url: str) -> list[Row]:
    name = f"dispatcher_bench_{uuid.uuid4().hex[:8]}"
    url = await create_database(database_url, name)
    try:
        store = await Store.open(url, max_size=2)
        try:
            rows = await _store_rows(store)
        finally:
            await store.close()
    finally:
        await drop_database(database_url, name)
    client = await connect_redis(redis_url)
    queue = WorkQueue(client, prefix=f"bench:{uuid.uuid4().hex[:8]}:")
    try:
        rows += await _queue_rows(queue)
    finally:
        await queue.clear()
        await client.aclose()
    return rows


def run(console: Console) -> None:
    with Services(load_settings()) as urls:
        rows = asyncio.run(_measure(urls.database_url, urls.redis_url))
    table = Table(title="Store and queue: rows per second (one connection, sequential)")
    table.add_column("operation")
    table.add_column("rows/s", justify="right")
    table.add_column("time", justify="right")
    table.add_column("goal", justify="right")
    for name, rate, elapsed, goal in rows:
        table.add_row(name, f"{rate:,.0f}", elapsed, goal)
    console.print(table)
