"""Fencing in SQL: instance epochs, the coordinator lease, in-doubt rows (store/fencing.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from dispatcher.store import Store
from dispatcher.store.models import (
    InDoubtPolicy,
    RecipientStatus,
    SendOutcome,
    SendResult,
    StatusUpdate,
)
from tests.store.conftest import MakeWorld, World, assert_counters_exact

R = RecipientStatus


def _result(world: World, recipient_id: int, outcome: SendOutcome) -> SendResult:
    return SendResult(
        recipient_id,
        outcome,
        datetime.now(UTC),
        instance_id=world.instance.id,
        wamid=f"wamid.f{recipient_id}" if outcome is SendOutcome.SENT else None,
        error_message=None if outcome is SendOutcome.SENT else "x",
    )


async def _statuses(store: Store, ids: list[int]) -> list[RecipientStatus]:
    found = await store.recipients.statuses(ids)
    return [found[i] for i in ids]


async def test_a_stale_epoch_changes_nothing(store: Store, make_world: MakeWorld) -> None:
    world = await make_world(6)
    old = await store.epochs.start(world.instance.id)
    claim = await store.recipients.claim_pending(world.campaign.id, 6)
    assert claim is not None
    ids = [r.id for r in claim.recipients]
    first = await store.recipients.hand_over(claim.claim_id, ids[:3], world.instance.id, old)
    assert (first.fenced, first.moved) == (False, ids[:3])

    new = await store.epochs.start(world.instance.id)  # the replacement started
    assert new == old + 1
    assert not await store.epochs.current(world.instance.id, old)
    stale = await store.recipients.hand_over(claim.claim_id, ids[3:], world.instance.id, old)
    assert stale.fenced
    assert (stale.moved, stale.in_doubt) == ([], [])
    assert await store.recipients.mark_sending(claim.claim_id, ids, world.instance.id, old) == []
    results = [_result(world, i, SendOutcome.SENT) for i in ids[:2]]
    results.append(_result(world, ids[2], SendOutcome.FAILED))
    changed = await store.outcomes.apply_results(results, instance_id=world.instance.id, epoch=old)
    assert changed == 0
    assert await _statuses(store, ids) == [R.SENDING] * 3 + [R.QUEUED] * 3

    # The current epoch: the queued rows are its to send; those the old one left sending
    # may have reached Meta, so they are in doubt and not handed over.
    current = await store.recipients.hand_over(claim.claim_id, ids, world.instance.id, new)
    assert (current.fenced, current.moved, current.in_doubt) == (False, ids[3:], ids[:3])
    changed = await store.outcomes.apply_results(
        [_result(world, ids[3], SendOutcome.SENT)], instance_id=world.instance.id, epoch=new
    )
    assert changed == 1
    await assert_counters_exact(store, world.campaign.id)


async def test_a_batch_read_again_sends_nothing_twice(store: Store, make_world: MakeWorld) -> None:
    world = await make_world(4)
    epoch = await store.epochs.start(world.instance.id)
    claim = await store.recipients.claim_pending(world.campaign.id, 4)
    assert claim is not None
    ids = [r.id for r in claim.recipients]
    first = await store.recipients.hand_over(claim.claim_id, ids, world.instance.id, epoch)
    assert first.moved == ids
    await store.outcomes.apply_results(
        [_result(world, ids[0], SendOutcome.SENT)], instance_id=world.instance.id, epoch=epoch
    )
    # The same entry read again, or an equal batch enqueued twice, by the same sender: its
    # rows are sent or already in its hands: nothing to send, nothing in doubt.
    again = await store.recipients.hand_over(claim.claim_id, ids, world.instance.id, epoch)
    assert (again.fenced, again.moved, again.in_doubt) == (False, [], [])


async def test_in_doubt_rows_wait_for_their_webhook_or_the_policy(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(3)
    epoch = await store.epochs.start(world.instance.id)
    claim = await store.recipients.claim_pending(world.campaign.id, 3)
    assert claim is not None
    ids = [r.id for r in claim.recipients]
    await store.recipients.hand_over(claim.claim_id, ids, world.instance.id, epoch)
    await store.outcomes.apply_results(
        [_result(world, i, SendOutcome.IN_DOUBT) for i in ids],
        instance_id=world.instance.id,
        epoch=epoch,
    )
    assert await _statuses(store, ids) == [R.SENDING] * 3
    # Neither the stale-row safety net nor a give-back moves a row in doubt.
    assert await store.recipients.requeue(claim.claim_id, ids) == 0
    assert await store.recipients.requeue_held(ids, world.instance.id, epoch) == 0
    assert await store.recipients.requeue_stale(world.campaign.id, timedelta(0)) == 0
    # Not due yet: nothing.
    past = datetime.now(UTC) - timedelta(hours=1)
    assert await store.in_doubt.resolve(past, InDoubtPolicy.RESEND, None) == 0

    # Its webhook came (matched by our callback data, the recipient id): settled as sent.
    await store.outcomes.apply_statuses(
        [StatusUpdate(R.SENT, datetime.now(UTC), "wamid.doubt0", recipient_id=ids[0])]
    )
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await store.in_doubt.resolve(future, InDoubtPolicy.FAIL_IN_DOUBT, None) >= 2
    assert await _statuses(store, ids) == [R.SENT, R.FAILED, R.FAILED]
    row = await store.recipients.get(ids[1])
    assert row is not None
    assert row.error_message is not None
    assert "in doubt" in row.error_message
    await assert_counters_exact(store, world.campaign.id)


async def test_resend_policy_gives_in_doubt_rows_back_to_pending(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(2)
    old = await store.epochs.start(world.instance.id)
    claim = await store.recipients.claim_pending(world.campaign.id, 2)
    assert claim is not None
    ids = [r.id for r in claim.recipients]
    await store.recipients.hand_over(claim.claim_id, ids, world.instance.id, old)
    new = await store.epochs.start(world.instance.id)  # the sender died; its successor:
    handed = await store.recipients.hand_over(claim.claim_id, ids, world.instance.id, new)
    assert handed.in_doubt == ids
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await store.in_doubt.resolve(future, InDoubtPolicy.RESEND, None) >= 2
    assert await _statuses(store, ids) == [R.PENDING] * 2
    again = await store.recipients.claim_pending(world.campaign.id, 2)
    assert again is not None
    assert [r.id for r in again.recipients] == ids
    await assert_counters_exact(store, world.campaign.id)


async def test_one_coordinator_holds_the_lease_and_fences_the_other(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(4)
    await store.pool.execute("DELETE FROM whatsapp_coordinator_lease")
    first = await store.leases.acquire("coordinator-a", 1.0)
    assert first is not None
    assert await store.leases.acquire("coordinator-b", 1.0) is None  # standby
    assert await store.leases.acquire("coordinator-a", 1.0) == first  # renewed, same term
    state = await store.leases.state()
    assert state is not None
    assert (state.holder, state.epoch) == ("coordinator-a", first)
    assert state.expires_in_s > 0

    claim = await store.recipients.claim_pending(
        world.campaign.id, 1, lease=("coordinator-b", first)
    )
    assert claim is None  # b does not hold the lease: its claim changes nothing
    claim = await store.recipients.claim_pending(
        world.campaign.id, 1, lease=("coordinator-a", first)
    )
    assert claim is not None

    await asyncio.sleep(1.2)  # a stops renewing (it died)
    assert (
        await store.recipients.claim_pending(world.campaign.id, 1, lease=("coordinator-a", first))
        is None
    )  # an expired lease fences its own holder too
    second = await store.leases.acquire("coordinator-b", 5.0)
    assert second == first + 1
    assert await store.leases.acquire("coordinator-a", 1.0) is None
    assert (
        await store.recipients.claim_pending(world.campaign.id, 1, lease=("coordinator-a", first))
        is None
    )
    assert (
        await store.recipients.claim_pending(world.campaign.id, 1, lease=("coordinator-b", second))
        is not None
    )
    assert await store.leases.release("coordinator-b")
    assert await store.leases.acquire("coordinator-a", 1.0) == second + 1
    await store.pool.execute("DELETE FROM whatsapp_coordinator_lease")


# -- in doubt now: marked only when nobody holds the row, cleared when it leaves 'sending' --


async def _age(store: Store, ids: list[int], by: timedelta = timedelta(hours=1)) -> None:
    await store.pool.execute(
        "UPDATE whatsapp_campaign_recipients "
        "SET updated_at = now() - $2::interval WHERE id = ANY($1::bigint[])",
        ids,
        by,
    )


async def _sending(store: Store, make_world: MakeWorld, n: int) -> tuple[World, int, list[int]]:
    """A campaign of ``n`` recipients, all handed to its instance's sender: (world, its
    epoch, the ids)."""
    world = await make_world(n)
    epoch = await store.epochs.start(world.instance.id)
    claim = await store.recipients.claim_pending(world.campaign.id, n)
    assert claim is not None
    ids = [r.id for r in claim.recipients]
    await store.recipients.hand_over(claim.claim_id, ids, world.instance.id, epoch)
    return world, epoch, ids


async def _in_doubt_at(store: Store, ids: list[int]) -> list[datetime | None]:
    rows = await store.pool.fetch(
        "SELECT id, in_doubt_at FROM whatsapp_campaign_recipients "
        "WHERE id = ANY($1::bigint[]) ORDER BY id",
        ids,
    )
    return [row["in_doubt_at"] for row in rows]


async def test_orphan_marking_rechecks_that_nobody_touched_the_row(
    store: Store, make_world: MakeWorld
) -> None:
    _, _, ids = await _sending(store, make_world, 3)
    await _age(store, ids)
    idle = timedelta(minutes=10)
    assert await store.recovery.orphaned_sending(None, idle, ids) == ids
    # Between the read and the write, the holder's touch came through for the first row
    # (it had failed once: the row looked idle): the holder keeps it.
    assert await store.recipients.keep_alive(ids[:1]) == 1
    assert await store.recovery.mark_in_doubt(ids, idle) == 2
    marked = await _in_doubt_at(store, ids)
    assert marked[0] is None
    assert None not in marked[1:]
    # Rows already in doubt keep the time they were marked.
    await _age(store, ids)
    assert await store.recovery.mark_in_doubt(ids[1:], idle) == 0
    assert await _in_doubt_at(store, ids[1:]) == marked[1:]


async def test_a_row_leaving_sending_is_no_longer_in_doubt(
    store: Store, make_world: MakeWorld
) -> None:
    world, epoch, ids = await _sending(store, make_world, 4)
    await store.outcomes.apply_results(
        [_result(world, i, SendOutcome.IN_DOUBT) for i in ids],
        instance_id=world.instance.id,
        epoch=epoch,
    )
    assert None not in await _in_doubt_at(store, ids)
    before = await store.in_doubt.count()
    # A late send result (Meta's answer came after all), webhooks of every kind.
    await store.outcomes.apply_results(
        [_result(world, ids[0], SendOutcome.SENT)], instance_id=world.instance.id, epoch=epoch
    )
    now = datetime.now(UTC)
    await store.outcomes.apply_statuses(
        [
            StatusUpdate(R.SENT, now, "wamid.now1", recipient_id=ids[1]),
            StatusUpdate(R.DELIVERED, now, "wamid.now2", recipient_id=ids[2]),
            StatusUpdate(R.FAILED, now, "wamid.now3", recipient_id=ids[3], error_code=131026),
        ]
    )
    assert await _statuses(store, ids) == [R.SENT, R.SENT, R.DELIVERED, R.FAILED]
    assert await _in_doubt_at(store, ids) == [None] * 4
    assert await store.in_doubt.count() == before - 4
    await assert_counters_exact(store, world.campaign.id)


async def test_the_in_doubt_sweep_and_count_use_an_index_of_rows_in_doubt_now(
    store: Store,
) -> None:
    definition = await store.pool.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'whatsapp_recipients_in_doubt_now'"
    )
    assert definition is not None
    assert "status = 'sending'" in definition
    assert "in_doubt_at IS NOT NULL" in definition
    # The index of every row ever in doubt is gone.
    assert not await store.pool.fetchval(
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'whatsapp_recipients_in_doubt'"
    )
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        for query in (
            # InDoubtRows.count and the rows InDoubtRows.resolve locks.
            "SELECT count(*) FROM whatsapp_campaign_recipients "
            "WHERE in_doubt_at IS NOT NULL AND status = 'sending'",
            "SELECT id FROM whatsapp_campaign_recipients "
            "WHERE in_doubt_at IS NOT NULL AND in_doubt_at < now() AND status = 'sending'",
        ):
            plan = "\n".join(row[0] for row in await conn.fetch("EXPLAIN " + query))
            assert "whatsapp_recipients_in_doubt_now" in plan, plan
