"""The retry sweep in process, on real Postgres and Redis: a round reads a bounded part of a
mass failure (routing goes on between rounds), and the dead letters of the failures it
moves back to pending leave the dead-letter stream."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatcher.engine.auto_retry import RetrySweep
from dispatcher.engine.retry import EXHAUSTED
from dispatcher.queue.streams import WorkQueue
from dispatcher.store import Store
from dispatcher.store.models import CampaignStatus, SendOutcome, SendResult
from dispatcher.store.models import RecipientStatus as R
from tests.engine.conftest import MakeCampaign, MakeInstance

EXHAUSTED_MESSAGE = f"{EXHAUSTED} after 8 attempts: (HTTP 503) Service Unavailable"
NEVER = {"rules": []}
SOON = {"rules": [{"on": "transient_exhausted", "after_s": 60, "max_rounds": 1}]}


async def _failed(
    store: Store,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
    n: int,
    policy: dict,
    start: int,
) -> tuple[list[int], str]:
    """A running campaign of ``n`` rows whose in-send retries all ran out; its ids and the
    instance that dead-lettered them."""
    instance = await make_instance()
    campaign = await make_campaign([instance], n, start)
    await store.pool.execute(
        "UPDATE whatsapp_campaigns SET retry_policy = $2 WHERE id = $1", campaign.id, policy
    )
    assert await store.campaigns.transition(campaign.id, CampaignStatus.RUNNING)
    claim = await store.recipients.claim_pending(campaign.id, n)
    assert claim is not None
    ids = [r.id for r in claim.recipients]
    await store.recipients.mark_sending(claim.claim_id, ids, instance.id)
    dead = [
        SendResult(i, SendOutcome.FAILED, datetime.now(UTC), instance.id, 8,
                   error_message=EXHAUSTED_MESSAGE, retries=0)
        for i in ids
    ]  # fmt: skip
    assert await store.outcomes.apply_results(dead, instance_id=instance.id) == n
    return ids, str(instance.id)


async def _undecided(store: Store) -> int:
    return int(await store.pool.fetchval("SELECT count(*) FROM whatsapp_retry_inbox"))


async def test_a_round_reads_at_most_its_passes_and_the_next_round_goes_on(
    store: Store, make_instance: MakeInstance, make_campaign: MakeCampaign
) -> None:
    await RetrySweep(store).sweep()  # earlier tests' failures out of the way
    await _failed(store, make_instance, make_campaign, 25, NEVER, 7000)
    sweep = RetrySweep(store, batch=4, max_passes=3)
    await sweep.sweep()
    assert (sweep.decided, sweep.behind) == (12, True)
    assert await _undecided(store) == 13
    await sweep.sweep()
    await sweep.sweep()
    assert (sweep.decided, sweep.behind) == (25, False)
    assert await _undecided(store) == 0


async def test_a_retried_exhaustion_leaves_the_dead_letter_stream(
    store: Store,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
    work_queue: WorkQueue,
) -> None:
    await RetrySweep(store).sweep()
    retried, on = await _failed(store, make_instance, make_campaign, 2, SOON, 7100)
    final, on_final = await _failed(store, make_instance, make_campaign, 1, NEVER, 7200)
    # As an instance worker dead-letters them: the batch, its messages whose retries ran out.
    for instance, ids in ((on, retried), (on_final, final)):
        await work_queue.enqueue_many(instance, [{"items": []}])
        (job,) = await work_queue.read(instance, "actor")
        dead = {"dead": [{"recipient_id": i, "address": "+5511"} for i in ids]}
        assert await work_queue.dead_letter(instance, job.job_id, dead, EXHAUSTED_MESSAGE)
    assert (await work_queue.stats()).dlq == 2

    sweep = RetrySweep(store, work_queue)
    await sweep.sweep()
    assert (await store.recipients.statuses(retried)) == {i: R.PENDING for i in retried}
    assert (await store.recipients.statuses(final)) == {final[0]: R.FAILED}
    # The retried ones' letter is gone; the final failure's stays for an operator.
    assert sweep.dead_letters_dropped == 1
    stats = await work_queue.stats()
    assert (stats.instances[on].dlq, stats.instances[on_final].dlq) == (0, 1)
