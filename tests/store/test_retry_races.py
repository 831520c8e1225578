"""What the retry move must never do, on real Postgres.

A late status or send result of the old attempt racing the move, on two real connections:
the move's transaction is held open while the late write waits for the row's lock, then
commits. The late write must move nothing (store/outcomes.py compares the row's own retries,
which Postgres re-checks on the row's newest version after the lock). And a row failed in
doubt is never moved at all."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.engine.auto_retry import RetrySweep
from dispatcher.store import Store
from dispatcher.store.attempts import _SETTLE
from dispatcher.store.models import (
    IN_DOUBT_FAILURE,
    CampaignStatus,
    InDoubtPolicy,
    SendOutcome,
    SendResult,
    StatusUpdate,
)
from dispatcher.store.models import RecipientStatus as R
from tests.store.conftest import MakeWorld, World, assert_counters_exact, phones

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FAST = {"rules": [{"codes": [131049], "after_s": 60, "max_rounds": 1}]}


async def _world(store: Store, make_world: MakeWorld) -> World:
    world = await make_world(0, running=False)
    await store.pool.execute(
        "UPDATE whatsapp_campaigns SET retry_policy = $2 WHERE id = $1", world.campaign.id, FAST
    )
    await store.recipients.ingest(world.campaign.id, phones(1))
    assert await store.campaigns.transition(world.campaign.id, CampaignStatus.RUNNING)
    return world


async def _sending(store: Store, world: World) -> int:
    claim = await store.recipients.claim_pending(world.campaign.id, 10)
    assert claim is not None
    (recipient,) = claim.recipients
    assert recipient.retries == 0
    ids = [recipient.id]
    assert await store.recipients.mark_sending(claim.claim_id, ids, world.instance.id) == ids
    return recipient.id


def _failed(recipient_id: int, wamid: str) -> StatusUpdate:
    return StatusUpdate(
        R.FAILED,
        T0 + timedelta(seconds=1),
        wamid=wamid,
        recipient_id=recipient_id,
        error_code=131049,
        error_message="not delivered to maintain healthy ecosystem engagement",
        attempt=0,
    )


async def _waits_for_a_lock(store: Store) -> None:
    for _ in range(500):
        if await store.pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the late write never waited for the retry move's lock")


async def _during_the_move(store: Store, recipient_id: int, late: Awaitable[int]) -> int:
    """Run ``late`` while the retry move of ``recipient_id`` holds its row, then commit the
    move; what ``late`` changed."""
    async with store.pool.acquire() as conn:
        move = conn.transaction()
        await move.start()
        try:
            settled = await conn.fetchrow(_SETTLE, [recipient_id], [0], [60.0])
            assert list(settled["retried"]) == [recipient_id]
            task = asyncio.ensure_future(late)
            await _waits_for_a_lock(store)
        except BaseException:
            await move.rollback()
            raise
        await move.commit()
    return await task


async def _assert_retried(store: Store, world: World, recipient_id: int) -> None:
    row = await store.recipients.get(recipient_id)
    assert row is not None
    assert (row.status, row.wamid, row.sent_at, row.delivered_at) == (R.PENDING, None, None, None)
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert (campaign.pending, campaign.total_sent, campaign.total_delivered) == (1, 0, 0)


LATE = {
    # Meta took it, then failed it (131049); a late delivered of the old wamid comes.
    "status by wamid": StatusUpdate(
        R.DELIVERED, T0 + timedelta(seconds=2), wamid="wamid.late", attempt=0
    ),
    # The same, naming the row by our tag alone (the wamid dropped: tag and attempt decide).
    "status by tag": StatusUpdate(R.READ, T0 + timedelta(seconds=2), attempt=0),
    # The failure came by webhook before the send's own result was flushed.
    "sent result": SendResult(0, SendOutcome.SENT, T0, None, 1, "wamid.late", retries=0),
}


@pytest.mark.parametrize("late", LATE.values(), ids=LATE.keys())
async def test_a_late_write_of_the_old_attempt_during_the_retry_move_moves_nothing(
    store: Store, make_world: MakeWorld, late: StatusUpdate | SendResult
) -> None:
    world = await _world(store, make_world)
    a = await _sending(store, world)
    wamid = f"wamid.{a}"
    if isinstance(late, StatusUpdate):
        sent = SendResult(a, SendOutcome.SENT, T0, world.instance.id, 1, wamid, retries=0)
        assert await store.outcomes.apply_results([sent], instance_id=world.instance.id) == 1
    await store.outcomes.apply_statuses([_failed(a, wamid)])
    write = (
        store.outcomes.apply_statuses([replace(late, recipient_id=a, wamid=late.wamid and wamid)])
        if isinstance(late, StatusUpdate)
        else store.outcomes.apply_results(
            [replace(late, recipient_id=a, instance_id=world.instance.id, wamid=wamid)],
            instance_id=world.instance.id,
        )
    )
    await _during_the_move(store, a, write)
    await _assert_retried(store, world, a)


async def test_statuses_and_results_of_the_new_attempt_still_apply(
    store: Store, make_world: MakeWorld
) -> None:
    world = await _world(store, make_world)
    a = await _sending(store, world)
    await store.outcomes.apply_statuses([_failed(a, f"wamid.{a}")])
    async with store.pool.acquire() as conn:
        await conn.fetchrow(_SETTLE, [a], [0], [0.0])
    claim = await store.recipients.claim_pending(world.campaign.id, 10)
    assert claim is not None
    assert [(r.id, r.retries) for r in claim.recipients] == [(a, 1)]
    await store.recipients.mark_sending(claim.claim_id, [a], world.instance.id)
    # A late result and status of attempt 0 (tag only) change nothing; attempt 1's do.
    old = SendResult(a, SendOutcome.SENT, T0, world.instance.id, 1, f"wamid.{a}", retries=0)
    assert await store.outcomes.apply_results([old], instance_id=world.instance.id) == 0
    stale = StatusUpdate(R.READ, T0, recipient_id=a, attempt=0)
    assert await store.outcomes.apply_statuses([stale]) == 0
    new = SendResult(a, SendOutcome.SENT, T0, world.instance.id, 1, f"wamid.{a}.2", retries=1)
    assert await store.outcomes.apply_results([new], instance_id=world.instance.id) == 1
    delivered = StatusUpdate(R.DELIVERED, T0, recipient_id=a, attempt=1)
    assert await store.outcomes.apply_statuses([delivered]) == 1
    row = await store.recipients.get(a)
    assert row is not None
    assert (row.status, row.wamid) == (R.DELIVERED, f"wamid.{a}.2")


async def test_a_row_failed_in_doubt_is_final_even_when_the_policy_names_its_last_code(
    store: Store, make_world: MakeWorld
) -> None:
    """A send throttled (130429, given back), sent again and in doubt, then failed by the
    in-doubt policy: a policy retrying 130429 must not resend it (Meta may have taken it)."""
    world = await make_world(0, running=False)
    policy = {"rules": [{"codes": [130429], "after_s": 1, "max_rounds": 3}]}
    await store.pool.execute(
        "UPDATE whatsapp_campaigns SET retry_policy = $2 WHERE id = $1", world.campaign.id, policy
    )
    await store.recipients.ingest(world.campaign.id, phones(1))
    assert await store.campaigns.transition(world.campaign.id, CampaignStatus.RUNNING)
    a = await _sending(store, world)
    throttled = SendResult(
        a, SendOutcome.REQUEUE, T0, world.instance.id, 1, error_code=130429, retries=0
    )
    assert await store.outcomes.apply_results([throttled], instance_id=world.instance.id) == 1
    assert await _sending(store, world) == a
    in_doubt = SendResult(a, SendOutcome.IN_DOUBT, T0, world.instance.id, 2, retries=0)
    assert await store.outcomes.apply_results([in_doubt], instance_id=world.instance.id) == 1
    future = datetime.now(UTC) + timedelta(hours=1)
    assert (
        await store.in_doubt.resolve(future, InDoubtPolicy.FAIL_IN_DOUBT, None, [world.campaign.id])
        == 1
    )

    assert await RetrySweep(store).sweep() == 0
    row = await store.recipients.get(a)
    assert row is not None
    assert (row.status, row.error_code) == (R.FAILED, None)
    assert row.error_message == IN_DOUBT_FAILURE
    attempts = await store.attempts.of_recipient(a)
    assert [(x.attempt, x.retry_at) for x in attempts] == [(1, None)]
