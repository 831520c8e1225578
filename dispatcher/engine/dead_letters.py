"""Dead letters retried: their work goes back to Postgres and is routed again under new claims.

A dead letter is never replayed as it was. Its batch carries a claim that a live actor may
still hold (a batch dead-lettered for being held too long by a consumer that was only slow),
and a replay would hand the same rows to a second sender. Instead each message gets back
the status it should have, and the dead letter is deleted once Postgres has its work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from typing import Any
from uuid import UUID

from dispatcher.engine.batch import Batch
from dispatcher.engine.config import EngineConfig
from dispatcher.engine.recovery import orphans_in_doubt
from dispatcher.queue.streams import DeadBatch, WorkQueue
from dispatcher.store import Store


async def retry_dead_letters(
    store: Store, queue: WorkQueue, config: EngineConfig, job_id: str | None = None
) -> dict[str, Any]:
    """Dead-lettered work back to Postgres, to be routed again under new claims; the
    dead letters are deleted, never replayed as they were.

    Messages whose retries ran out (never accepted by Meta) are revived with a fresh set
    of attempts. A batch dead-lettered for being held too long may still be in a live
    actor's hands: its rows nobody started go back to pending (out of the claim, so the
    holder sends none of them); its ``sending`` rows stay with their holder, or are
    marked in doubt once nobody touches them. Every dead letter, however many (paged).
    """
    revived: set[UUID] = set()
    counts = {"retried": 0, "revived": 0, "requeued": 0, "in_doubt": 0}
    for instance in await queue.instances():
        async for page in _dead_letters_to_retry(queue, instance, job_id):
            await _retry_page(store, queue, config, instance, page, revived, counts)
    reopened = await store.campaigns.reopen(sorted(revived)) if revived else 0
    return {**counts, "campaigns_reopened": reopened}


async def give_back_reclaimed(
    store: Store, queue: WorkQueue, config: EngineConfig, job_ids: Collection[str]
) -> dict[str, int]:
    """Batches a reclaim just dead-lettered (held by dead consumers too many times, e.g. an
    actor restarted again and again) handled at once, as :func:`retry_dead_letters` would:
    rows nobody started go back to pending, ``sending`` rows nobody holds are marked in doubt
    (the in-doubt policy settles them), and the dead letters are deleted. Left in the
    dead-letter stream, their rows would hold the campaign until an operator came."""
    wanted = set(job_ids)
    revived: set[UUID] = set()
    counts = {"retried": 0, "revived": 0, "requeued": 0, "in_doubt": 0}
    if not wanted:
        return counts
    for instance in await queue.instances():
        async for page in queue.dead_letter_pages(instance):
            ours = [d for d in page if d.job_id in wanted]
            if ours:
                await _retry_page(store, queue, config, instance, ours, revived, counts)
    if revived:
        await store.campaigns.reopen(sorted(revived))
    return counts


async def _dead_letters_to_retry(
    queue: WorkQueue, instance: str, job_id: str | None
) -> AsyncIterator[list[DeadBatch]]:
    """Pages of the dead letters to retry: all, or the one named ``job_id``."""
    if job_id is None:
        async for page in queue.dead_letter_pages(instance):
            yield page
        return
    # An original job id wins over an equal dead-letter id (both are stream ids).
    by_job: list[DeadBatch] = []
    by_dlq: list[DeadBatch] = []
    async for page in queue.dead_letter_pages(instance):
        by_job.extend(d for d in page if d.job_id == job_id)
        by_dlq.extend(d for d in page if d.dlq_id == job_id)
    if by_job or by_dlq:
        yield by_job or by_dlq


async def _retry_page(
    store: Store,
    queue: WorkQueue,
    config: EngineConfig,
    instance: str,
    page: list[DeadBatch],
    revived: set[UUID],
    counts: dict[str, int],
) -> None:
    dead_ids = [int(d["recipient_id"]) for b in page for d in b.batch.get("dead", [])]
    if dead_ids:
        campaigns = await store.recipients.revive(dead_ids)
        revived.update(campaigns)
        counts["revived"] += len(dead_ids)
    for dead in page:
        if "dead" in dead.batch:
            continue
        batch = Batch.from_json(dead.batch)
        ids = [item.recipient_id for item in batch.items]
        counts["requeued"] += await store.recipients.requeue(batch.claim_id, ids)
        counts["in_doubt"] += await orphans_in_doubt(store, config, None, ids)
    # Deleted only once Postgres has their work: a crash before this retries them again.
    counts["retried"] += await queue.drop_dead(instance, [d.dlq_id for d in page])
