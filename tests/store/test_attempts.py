"""The retry move on real Postgres (store/attempts.py, migration 0018): exactly once, whatever
Meta's webhooks do (a failed status delivered twice, late statuses of the old wamid), with
exact counters and every attempt kept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from dispatcher.engine.auto_retry import RetrySweep
from dispatcher.engine.retry import EXHAUSTED
from dispatcher.store import Store
from dispatcher.store.attempts import REOPENED_FOR_RETRY, Decided
from dispatcher.store.models import CampaignStatus, SendOutcome, SendResult, StatusUpdate
from dispatcher.store.models import RecipientStatus as R
from tests.store.conftest import MakeWorld, World, assert_counters_exact, phones

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FAST = {"rules": [{"codes": [131049], "after_s": 60, "max_rounds": 1}]}


async def _world(store: Store, make_world: MakeWorld, n: int, policy: dict | None) -> World:
    world = await make_world(0, running=False)
    await store.pool.execute(
        "UPDATE whatsapp_campaigns SET retry_policy = $2 WHERE id = $1", world.campaign.id, policy
    )
    await store.recipients.ingest(world.campaign.id, phones(n))
    assert await store.campaigns.transition(world.campaign.id, CampaignStatus.RUNNING)
    return world


async def _send(store: Store, world: World, wamid_suffix: str = "") -> list[int]:
    """Claim every due row, hand it over and record its send as accepted."""
    claim = await store.recipients.claim_pending(world.campaign.id, 100)
    assert claim is not None
    ids = [r.id for r in claim.recipients]
    assert await store.recipients.mark_sending(claim.claim_id, ids, world.instance.id) == ids
    results = [
        SendResult(i, SendOutcome.SENT, T0, world.instance.id, 1, f"wamid.{i}{wamid_suffix}")
        for i in ids
    ]
    assert await store.outcomes.apply_results(results, instance_id=world.instance.id) == len(ids)
    return ids


def _failed(recipient_id: int, wamid: str, code: int = 131049) -> StatusUpdate:
    return StatusUpdate(
        R.FAILED,
        T0 + timedelta(seconds=1),
        wamid=wamid,
        recipient_id=recipient_id,  # our callback tag names it as well
        error_code=code,
        error_message="This message was not delivered to maintain healthy ecosystem engagement.",
    )


def _status(status: R, recipient_id: int, wamid: str) -> StatusUpdate:
    return StatusUpdate(status, T0 + timedelta(seconds=2), wamid=wamid, recipient_id=recipient_id)


async def _due_now(store: Store, recipient_id: int) -> None:
    """The delay has passed (as the clock would have it)."""
    await store.pool.execute(
        "UPDATE whatsapp_campaign_recipients SET not_before = now() WHERE id = $1", recipient_id
    )


async def _sweep_all(store: Store) -> int:
    return await RetrySweep(store).sweep()


async def _failed_by_webhook(store: Store, make_world: MakeWorld) -> tuple[World, int]:
    """A one-recipient campaign under FAST whose message Meta took, then failed (131049)."""
    world = await _world(store, make_world, 1, FAST)
    (a,) = await _send(store, world)
    await store.outcomes.apply_statuses([_failed(a, f"wamid.{a}")])
    return world, a


async def test_a_131049_by_webhook_goes_back_to_pending_after_the_delay_exactly_once(
    store: Store, make_world: MakeWorld
) -> None:
    world = await _world(store, make_world, 2, FAST)
    a, b = await _send(store, world)
    # Meta retries webhooks: the failed status comes twice, in one batch and in another.
    await store.outcomes.apply_statuses([_failed(a, f"wamid.{a}"), _failed(a, f"wamid.{a}")])
    await store.outcomes.apply_statuses([_failed(a, f"wamid.{a}")])
    assert await store.attempts.undecided_count(world.campaign.id) == 1
    # A failure not decided yet holds the campaign's completion, even with nothing pending.
    assert not await store.campaigns.complete_if_settled(world.campaign.id)

    await _sweep_all(store)
    row = await store.recipients.get(a)
    assert row is not None
    assert (row.status, row.wamid, row.error_code, row.sent_at, row.attempts) == (
        R.PENDING,
        None,
        None,
        None,
        0,
    )
    waits = await store.pool.fetchval(
        "SELECT not_before - now() FROM whatsapp_campaign_recipients WHERE id = $1", a
    )
    assert timedelta(seconds=55) < waits <= timedelta(seconds=60)
    campaign = await assert_counters_exact(store, world.campaign.id)
    # total_sent and total_failed count each recipient's current attempt: the retried row
    # left both and waits in pending.
    assert (campaign.total_sent, campaign.total_failed, campaign.pending) == (1, 0, 1)
    assert campaign.retry_waiting == 1
    assert await store.recipients.claim_pending(world.campaign.id, 10) is None  # not due yet

    # The failed webhook once more, then late statuses of the old wamid: nothing moves.
    await store.outcomes.apply_statuses([_failed(a, f"wamid.{a}")])
    await store.outcomes.apply_statuses(
        [_status(R.DELIVERED, a, f"wamid.{a}"), _status(R.READ, a, f"wamid.{a}")]
    )
    # The old attempt's own send result, written late (its failure came first): ignored.
    late = SendResult(a, SendOutcome.SENT, T0, world.instance.id, 1, f"wamid.{a}")
    assert await store.outcomes.apply_results([late], instance_id=world.instance.id) == 0
    assert await store.attempts.undecided_count(world.campaign.id) == 0
    await _sweep_all(store)
    assert (
        await store.pool.fetchval(
            "SELECT (status, retries)::text FROM whatsapp_campaign_recipients WHERE id = $1", a
        )
        == "(pending,1)"
    )
    attempts = await store.attempts.of_recipient(a)
    assert [(x.attempt, x.status, x.wamid, x.error_code) for x in attempts] == [
        (1, R.FAILED, f"wamid.{a}", 131049),
        (2, R.PENDING, None, None),
    ]
    assert attempts[0].retry_at is not None
    assert attempts[0].sent_at == T0

    # Due: claimed and sent like any row; a late status of the old wamid still moves nothing,
    # the new wamid's do.
    await _due_now(store, a)
    assert await _send(store, world, ".2") == [a]
    await store.outcomes.apply_statuses([_status(R.READ, a, f"wamid.{a}")])
    row = await store.recipients.get(a)
    assert row is not None
    assert row.status is R.SENT
    await store.outcomes.apply_statuses([_status(R.DELIVERED, a, f"wamid.{a}.2")])
    row = await store.recipients.get(a)
    assert row is not None
    assert (row.status, row.wamid) == (R.DELIVERED, f"wamid.{a}.2")
    await store.outcomes.apply_statuses([_status(R.DELIVERED, b, f"wamid.{b}")])
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert (campaign.total_sent, campaign.total_delivered, campaign.total_failed) == (2, 2, 0)
    assert campaign.retry_waiting == 0
    assert await store.campaigns.complete_if_settled(world.campaign.id)


async def test_after_the_last_round_the_row_stays_failed_with_its_last_code(
    store: Store, make_world: MakeWorld
) -> None:
    world, a = await _failed_by_webhook(store, make_world)
    await _sweep_all(store)
    await _due_now(store, a)
    await _send(store, world, ".2")
    await store.outcomes.apply_statuses([_failed(a, f"wamid.{a}.2", code=131026)])
    await _sweep_all(store)
    row = await store.recipients.get(a)
    assert row is not None
    assert (row.status, row.error_code, row.wamid) == (R.FAILED, 131026, f"wamid.{a}.2")
    attempts = await store.attempts.of_recipient(a)
    assert [(x.attempt, x.error_code, x.retry_at is None) for x in attempts] == [
        (1, 131049, False),
        (2, 131026, True),
    ]
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert (campaign.total_sent, campaign.total_failed, campaign.retry_waiting) == (1, 1, 0)
    assert await store.campaigns.complete_if_settled(world.campaign.id)


async def test_one_decision_settled_twice_or_concurrently_moves_the_row_once(
    store: Store, make_world: MakeWorld
) -> None:
    world, a = await _failed_by_webhook(store, make_world)
    rows = [r for r in await store.attempts.undecided(10_000) if r.recipient_id == a]
    decided = [Decided(rows[0], 60.0)]
    settled = await asyncio.gather(*(store.attempts.settle(decided) for _ in range(4)))
    assert sum(len(s.retried) for s in settled) == 1
    row = await store.recipients.get(a)
    assert row is not None
    assert row.status is R.PENDING
    assert len(await store.attempts.of_recipient(a)) == 2  # the failed one and the current
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert (campaign.pending, campaign.total_failed) == (1, 0)


async def test_transient_exhaustion_is_retried_by_the_default_policy_after_minutes(
    store: Store, make_world: MakeWorld
) -> None:
    world = await _world(store, make_world, 1, None)
    claim = await store.recipients.claim_pending(world.campaign.id, 10)
    assert claim is not None
    (a,) = [r.id for r in claim.recipients]
    await store.recipients.mark_sending(claim.claim_id, [a], world.instance.id)
    dead = SendResult(
        a,
        SendOutcome.FAILED,
        T0,
        world.instance.id,
        5,
        error_message=f"{EXHAUSTED} after 5 attempts: (HTTP 503) Service Unavailable",
    )
    assert await store.outcomes.apply_results([dead], instance_id=world.instance.id) == 1
    await _sweep_all(store)
    waits = await store.pool.fetchval(
        "SELECT not_before - now() FROM whatsapp_campaign_recipients WHERE id = $1", a
    )
    assert timedelta(seconds=295) < waits <= timedelta(seconds=300)
    row = await store.recipients.get(a)
    assert row is not None
    assert (row.status, row.attempts) == (R.PENDING, 0)
    await assert_counters_exact(store, world.campaign.id)


async def test_a_permanent_failure_or_a_cancelled_campaign_is_final(
    store: Store, make_world: MakeWorld
) -> None:
    world = await _world(store, make_world, 2, None)
    a, b = await _send(store, world)
    await store.outcomes.apply_statuses([_failed(a, f"wamid.{a}", code=131026)])
    await _sweep_all(store)
    assert await store.campaigns.transition(world.campaign.id, CampaignStatus.CANCELLED)
    await store.outcomes.apply_statuses([_failed(b, f"wamid.{b}")])  # 131049, but cancelled
    await _sweep_all(store)
    for recipient_id, code in ((a, 131026), (b, 131049)):
        row = await store.recipients.get(recipient_id)
        assert row is not None
        assert (row.status, row.error_code) == (R.FAILED, code)
        attempts = await store.attempts.of_recipient(recipient_id)
        assert [(x.attempt, x.error_code, x.retry_at) for x in attempts] == [(1, code, None)]
    assert await store.attempts.undecided_count(world.campaign.id) == 0


async def test_a_failure_after_completion_reopens_the_campaign_for_its_retry(
    store: Store, make_world: MakeWorld
) -> None:
    world = await _world(store, make_world, 1, FAST)
    (a,) = await _send(store, world)
    assert await store.campaigns.complete_if_settled(world.campaign.id)
    await store.outcomes.apply_statuses([_failed(a, f"wamid.{a}")])
    await _sweep_all(store)
    campaign = await store.campaigns.get(world.campaign.id)
    assert campaign is not None
    assert (campaign.status, campaign.pending, campaign.finished_at) == (
        CampaignStatus.RUNNING,
        1,
        None,
    )
    assert campaign.status_reason == REOPENED_FOR_RETRY  # shown while it runs again
    assert not await store.campaigns.complete_if_settled(world.campaign.id)
