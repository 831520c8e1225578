"""The coordinator core's recovery paths, in-process on real Postgres and Redis with a fake
fleet and a fake clock: the messaging-limit gate freeing slots of unsent messages, the 131064
hold across restarts, and the queue's edge cases (clear, cancel, pause/resume of a scheduled
campaign, retry_dlq of a held batch, dead letters beyond 10,000, a revived message's attempts).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis.asyncio as aioredis

from dispatcher.engine.batch import Batch
from dispatcher.meta.error_codes import ErrorClass
from dispatcher.meta.tiers import MessagingTier
from dispatcher.store import Store
from dispatcher.store.models import Campaign, CampaignStatus, RecipientStatus, SendOutcome
from tests.engine.recovery_world import TEMPLATE, World, own_store, world_over

__all__ = ["own_store"]  # the module's database fixture


@pytest.fixture
async def world(own_store: Store, redis_client: aioredis.Redis, redis_prefix: str) -> World:
    return world_over(own_store, redis_client, redis_prefix)


async def statuses(world: World, campaign_id) -> dict[RecipientStatus, int]:
    counts = await world.store.recipients.count_by_status(campaign_id)
    return {status: n for status, n in counts.items() if n}


# -- the portfolio gate ----------------------------------------------------------------


async def test_the_gate_frees_the_slots_of_sends_meta_never_accepted(world: World) -> None:
    number = await world.number(tier=MessagingTier.TIER_250)
    campaign = await world.campaign([number], 300)
    assert await world.core.start_campaign(campaign.id)
    await world.core.tick()
    jobs = await world.take(number)
    routed = [i for job in jobs for i in await world.start(number, job)]
    assert len(routed) == 250  # the portfolio's whole window: 50 wait
    assert world.core.portfolio_stats()[number.business_id]["daily_unique_used"] == 250
    # Meta accepted 150; 100 failed before acceptance (an error answer: never sent).
    await world.settle(number, routed[:150], SendOutcome.SENT)
    await world.settle(
        number, routed[150:], SendOutcome.FAILED, error_code=131026, error_message="x"
    )
    for job in jobs:
        await world.queue.ack(number.id, job.job_id)

    await world.core.tick()
    assert await world.take(number) == []  # still blocked: the gate did not look yet
    world.clock.advance(world.config.gate_resync_s)
    await world.core.tick()
    more = [i for job in await world.take(number) for i in await world.start(number, job)]
    assert len(more) == 50
    assert world.core.portfolio_stats()[number.business_id]["daily_unique_used"] == 200


async def test_a_recover_round_frees_slots_of_requeued_sends(world: World) -> None:
    number = await world.number(tier=MessagingTier.TIER_250)
    campaign = await world.campaign([number], 250)
    assert await world.core.start_campaign(campaign.id)
    await world.core.tick()
    jobs = await world.take(number)
    ids = [i for job in jobs for i in await world.start(number, job)]
    await world.settle(number, ids, SendOutcome.REQUEUE)  # e.g. rerouted: not sent here
    for job in jobs:
        await world.queue.ack(number.id, job.job_id)
    world.clock.advance(1)
    await world.core.recover()
    assert world.core.portfolio_stats()[number.business_id]["daily_unique_used"] == 0


# -- 131064 ------------------------------------------------------------------------------


async def test_a_131064_hold_is_stored_shown_and_survives_a_restart_until_released(
    world: World,
) -> None:
    held = await world.number()
    sibling = await world.number(business_id=held.business_id)
    campaign = await world.campaign([held, sibling], 40)
    # The actor that met 131064 halted: it reports the error and takes no work.
    world.fleet.errors[held.id] = ErrorClass.PORTFOLIO_HOLD.value
    world.fleet.unusable.add(held.id)
    assert await world.core.start_campaign(campaign.id)
    await world.core.tick()
    assert await world.take(sibling) == []  # the sibling shares the hold
    stats = world.core.portfolio_stats()[held.business_id]
    assert stats["held"] is True
    assert "131064" in stats["hold_reason"]
    assert await world.store.holds.get(held.business_id) is not None

    world.fleet.errors.clear()  # a restarted coordinator: its actors know nothing of it
    world.fleet.unusable.clear()
    core = world.restart()
    await core.tick()
    assert await world.take(sibling) == []
    assert core.portfolio_stats()[held.business_id]["held"] is True

    world.fleet.errors[held.id] = ErrorClass.PORTFOLIO_HOLD.value  # not restarted yet
    world.fleet.unusable.add(held.id)
    assert await core.release_portfolio(held.business_id)
    assert await world.store.holds.get(held.business_id) is None
    await core.tick()
    assert core.portfolio_stats()[held.business_id]["held"] is False  # the old report
    assert len(await world.take(sibling)) > 0
    world.fleet.errors.clear()  # restarted...
    world.fleet.unusable.clear()
    await core.tick()
    world.fleet.errors[held.id] = ErrorClass.PORTFOLIO_HOLD.value  # ...and held again
    await core.tick()
    assert core.portfolio_stats()[held.business_id]["held"] is True


async def test_re_registering_a_number_ends_the_hold(world: World) -> None:
    number = await world.number()
    await world.store.holds.hold(number.business_id, "131064 on number x")
    campaign = await world.campaign([number], 10)
    assert await world.core.start_campaign(campaign.id)
    await world.core.tick()
    assert await world.take(number) == []
    await world.core.refresh_instance(number.id)
    await world.core.tick()
    assert len(await world.take(number)) == 1


# -- the queue's edge cases ------------------------------------------------------------


async def test_clear_gives_queued_rows_back_to_pending_at_once(world: World) -> None:
    number = await world.number()
    campaign = await world.campaign([number], 100)
    assert await world.core.start_campaign(campaign.id)
    await world.core.tick()
    assert (await world.get(campaign.id)).queued == 100
    result = await world.core.clear_queue()
    assert result["requeued"] == 100
    assert await statuses(world, campaign.id) == {RecipientStatus.PENDING: 100}
    await world.core.tick()  # routed again, under new claims
    jobs = await world.take(number)
    assert sum([len(await world.start(number, job)) for job in jobs]) == 100


async def test_cancel_with_batches_routed_sends_nothing_more(world: World) -> None:
    number = await world.number()
    campaign = await world.campaign([number], 100)
    assert await world.core.start_campaign(campaign.id)
    await world.core.tick()
    assert await world.core.cancel_campaign(campaign.id)
    jobs = await world.take(number)
    assert jobs  # the batches are still on the stream...
    assert [await world.start(number, job) for job in jobs] == [[]] * len(jobs)  # ...empty
    fresh = await world.get(campaign.id)
    assert fresh.status is CampaignStatus.CANCELLED
    assert (fresh.pending, fresh.queued, fresh.sending, fresh.total_sent) == (100, 0, 0, 0)


async def test_resume_of_a_paused_scheduled_campaign_keeps_its_time(world: World) -> None:
    number = await world.number()
    at = datetime.now(UTC) + timedelta(hours=1)
    campaign = await world.campaign([number], 10, scheduled_at=at)
    assert await world.core.pause_campaign(campaign.id)
    assert await world.core.resume_campaign(campaign.id)
    fresh = await world.get(campaign.id)
    assert fresh.status is CampaignStatus.SCHEDULED
    assert fresh.scheduled_at == at.replace(microsecond=at.microsecond)
    assert fresh.started_at is None
    await world.core.tick()
    assert await world.take(number) == []  # not due: nothing starts now


async def test_resume_of_a_scheduled_campaign_whose_time_passed_runs_it(world: World) -> None:
    number = await world.number()
    later = datetime.now(UTC) + timedelta(hours=1)
    campaign = await world.campaign([number], 10, scheduled_at=later)
    assert await world.core.pause_campaign(campaign.id)
    await world.store.pool.execute(
        "UPDATE whatsapp_campaigns SET scheduled_at = now() - interval '1 minute' WHERE id = $1",
        campaign.id,
    )
    assert await world.core.resume_campaign(campaign.id)
    assert (await world.get(campaign.id)).status is CampaignStatus.RUNNING


async def test_retry_dlq_of_a_batch_still_held_by_a_live_consumer_sends_nothing_twice(
    world: World,
) -> None:
    number = await world.number()
    campaign = await world.campaign([number], 20)
    assert await world.core.start_campaign(campaign.id)
    await world.core.tick()
    [job] = await world.take(number, consumer="slow")
    batch = Batch.from_json(job.batch)
    # The slow consumer started half its batch, then stalled past the visibility timeout:
    # reclaim took the batch from it (too many times: dead-lettered). It is still alive.
    started = await world.store.recipients.mark_sending(
        batch.claim_id, [i.recipient_id for i in batch.items[:10]], number.id
    )
    reclaimed = await world.queue.stream(number.id).reclaim(0, max_deliveries=1)
    assert reclaimed.dead == [job.job_id]

    result = await world.core.retry_dead_letters()
    await world.core.tick()
    # Whatever is on the stream now, another consumer gets none of the held rows.
    taken = [i for job in await world.take(number, "other") for i in await world.start(number, job)]
    assert not set(taken) & set(started)
    assert sorted(taken) == sorted(i.recipient_id for i in batch.items[10:])
    assert result["retried"] == 1
    assert result["requeued"] == 10  # the half nobody started
    assert result["in_doubt"] == 0  # the other half is still in the live holder's hands
    # The live holder still sends its own half, once.
    assert await world.store.recipients.statuses(started) == dict.fromkeys(
        started, RecipientStatus.SENDING
    )


async def test_a_batch_dead_lettered_by_restarts_is_given_back_at_once(
    own_store: Store, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    world = world_over(own_store, redis_client, redis_prefix, visibility_timeout_s=0)
    number = await world.number()
    campaign = await world.campaign([number], 20)
    assert await world.core.start_campaign(campaign.id)
    await world.core.tick()
    [job] = await world.take(number, consumer="x0")
    batch = Batch.from_json(job.batch)
    ids = [i.recipient_id for i in batch.items]
    # An actor started half the batch (Meta may have those), then was SIGKILLed again and
    # again: each incarnation took the batch over, until the reclaim dead-lettered it.
    started = await world.store.recipients.mark_sending(batch.claim_id, ids[:10], number.id)
    for incarnation in range(1, 5):
        assert len((await world.queue.stream(number.id).reclaim(0)).requeued) == 1
        assert len(await world.take(number, consumer=f"x{incarnation}")) == 1
    await world.store.pool.execute(  # nobody touched the started rows since
        "UPDATE whatsapp_campaign_recipients SET updated_at = now() - interval '1 hour' "
        "WHERE id = ANY($1::bigint[])",
        started,
    )
    result = await world.core.recover()
    assert (result["dead"], result["dead_requeued"], result["dead_in_doubt"]) == (1, 10, 10)
    # Not stranded: the unstarted half is routed again at once; the started half is in doubt
    # (its webhook or the in-doubt policy settles it), never resent blindly.
    await world.core.tick()
    rerouted = [i for job in await world.take(number, "y") for i in await world.start(number, job)]
    assert sorted(rerouted) == ids[10:]
    in_doubt = await world.store.pool.fetch(
        "SELECT id FROM whatsapp_campaign_recipients "
        "WHERE id = ANY($1::bigint[]) AND status = 'sending' AND in_doubt_at IS NOT NULL",
        ids,
    )
    assert sorted(row["id"] for row in in_doubt) == started
    assert await world.queue.dead_letters(number.id) == []


async def test_stale_sending_rows_go_in_doubt_not_back_to_pending(world: World) -> None:
    number = await world.number()
    campaign = await world.campaign([number], 6)
    assert await world.core.start_campaign(campaign.id)
    await world.core.tick()
    [job] = await world.take(number)
    batch = Batch.from_json(job.batch)
    ids = [i.recipient_id for i in batch.items]
    started = await world.store.recipients.mark_sending(batch.claim_id, ids[:3], number.id)
    # Its batch vanished (a cleared stream) and nobody touched its rows for longer than
    # stale_after_s.
    await world.queue.ack(number.id, job.job_id)
    await world.store.pool.execute(
        "UPDATE whatsapp_campaign_recipients SET updated_at = now() - $2::interval "
        "WHERE id = ANY($1::bigint[])",
        ids,
        timedelta(seconds=world.config.stale_after_s + 60),
    )
    result = await world.core.recover()
    assert (result["stale"], result["stale_in_doubt"]) == (3, 3)
    assert await statuses(world, campaign.id) == {
        RecipientStatus.PENDING: 3,
        RecipientStatus.SENDING: 3,
    }
    assert await world.store.in_doubt.count() >= len(started)


async def _dead_letter_everyone(
    world: World, client: aioredis.Redis, n: int
) -> tuple[Campaign, list[int]]:
    """A completed campaign whose every message used up its attempts, each dead-lettered in
    a batch of its own, as the instance worker writes them."""
    number = await world.number()
    campaign = await world.campaign([number], n)
    assert await world.core.start_campaign(campaign.id)
    rows = await world.store.pool.fetch(
        "SELECT id FROM whatsapp_campaign_recipients WHERE campaign_id = $1 ORDER BY id",
        campaign.id,
    )
    ids = [row["id"] for row in rows]
    await world.settle(number, ids, SendOutcome.FAILED, attempts=8, error_message="exhausted")
    # Decided final (no rule of the default policy matches), a few batches per round.
    await world.core.retries.sweep()
    while world.core.retries.behind:
        await world.core.retries.sweep()
    assert await world.store.campaigns.complete_if_settled(campaign.id)
    await world.queue.enqueue(number.id, {"registers": "the number's stream"})
    await world.queue.clear(number.id)
    dlq = world.queue.stream(number.id).dlq_key
    async with client.pipeline(transaction=False) as pipe:
        for i in ids:
            payload = {
                "campaign_id": str(campaign.id),
                "claim_id": 0,
                "template": TEMPLATE,
                "items": [[i, "+5511", None, 8]],
                "dead": [{"recipient_id": i, "address": "+5511"}],
            }
            fields = {"payload": orjson.dumps(payload), "job": f"{i}-1", "reason": "x", "at": 0}
            pipe.xadd(dlq, fields)  # type: ignore[arg-type]
        await pipe.execute()
    return campaign, ids


async def test_retry_dlq_reaches_dead_letters_beyond_10000(
    world: World, redis_client: aioredis.Redis
) -> None:
    campaign, _ = await _dead_letter_everyone(world, redis_client, 10_050)
    result = await world.core.retry_dead_letters()
    assert (result["retried"], result["revived"]) == (10_050, 10_050)
    assert result["campaigns_reopened"] == 1
    assert await statuses(world, campaign.id) == {RecipientStatus.PENDING: 10_050}
    assert (await world.queue.stats()).dlq == 0


async def test_a_revived_message_gets_a_fresh_set_of_attempts(
    world: World, redis_client: aioredis.Redis
) -> None:
    campaign, ids = await _dead_letter_everyone(world, redis_client, 3)
    assert (await world.store.recipients.get(ids[0])).attempts == 8  # type: ignore[union-attr]
    await world.core.retry_dead_letters()
    claim = await world.store.recipients.claim_pending(campaign.id, 10)
    assert claim is not None
    # Routed with its old count, the worker's backoff would give it no retry at all.
    assert [r.attempts for r in claim.recipients] == [0, 0, 0]
