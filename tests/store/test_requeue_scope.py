"""Giving rows back is scoped to who has them: a batch's claim, a sender's own rows."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatcher.store import Store
from dispatcher.store.models import RecipientStatus, SendOutcome, SendResult
from tests.store.conftest import MakeWorld, assert_counters_exact

R = RecipientStatus


async def _statuses(store: Store, ids: list[int]) -> list[RecipientStatus]:
    found = await store.recipients.statuses(ids)
    return [found[i] for i in ids]


async def test_a_batch_given_back_moves_only_rows_still_queued_in_its_claim(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(6)
    epoch = await store.epochs.start(world.instance.id)
    claim = await store.recipients.claim_pending(world.campaign.id, 6)
    assert claim is not None
    ids = [r.id for r in claim.recipients]
    # A sender took half of the batch (a copy it reclaimed) and is sending them: a drain
    # of another copy gives back only the half nobody started.
    handed = await store.recipients.hand_over(claim.claim_id, ids[:3], world.instance.id, epoch)
    assert handed.moved == ids[:3]
    assert await store.recipients.requeue(claim.claim_id, ids) == 3
    assert await _statuses(store, ids) == [R.SENDING] * 3 + [R.PENDING] * 3
    # Claimed again under a new claim: a stale copy of the old batch changes nothing.
    again = await store.recipients.claim_pending(world.campaign.id, 6)
    assert again is not None
    assert [r.id for r in again.recipients] == ids[3:]
    assert await store.recipients.requeue(claim.claim_id, ids) == 0
    assert await _statuses(store, ids) == [R.SENDING] * 3 + [R.QUEUED] * 3
    await assert_counters_exact(store, world.campaign.id)


async def test_a_sender_gives_back_only_the_rows_it_holds(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(4)
    other = await make_world()
    old = await store.epochs.start(world.instance.id)
    claim = await store.recipients.claim_pending(world.campaign.id, 4)
    assert claim is not None
    ids = [r.id for r in claim.recipients]
    await store.recipients.hand_over(claim.claim_id, ids, world.instance.id, old)
    new = await store.epochs.start(world.instance.id)
    # Neither a later incarnation nor another instance gives back the old sender's rows:
    # they may have reached Meta (in doubt once reclaimed), never back to pending.
    assert await store.recipients.requeue_held(ids, world.instance.id, new) == 0
    assert await store.recipients.requeue_held(ids, other.instance.id, old) == 0
    assert await store.recipients.requeue(claim.claim_id, ids) == 0
    assert await _statuses(store, ids) == [R.SENDING] * 4
    # Its holder does (its unsent messages, dropped at a stop).
    assert await store.recipients.requeue_held(ids[:2], world.instance.id, old) == 2
    assert await _statuses(store, ids) == [R.PENDING] * 2 + [R.SENDING] * 2
    await assert_counters_exact(store, world.campaign.id)


async def test_failed_and_requeue_results_change_only_the_writers_own_rows(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(4)
    other = await make_world()
    mine = await store.epochs.start(world.instance.id)
    theirs = await store.epochs.start(other.instance.id)
    claim = await store.recipients.claim_pending(world.campaign.id, 4)
    assert claim is not None
    ids = [r.id for r in claim.recipients]
    await store.recipients.hand_over(claim.claim_id, ids, world.instance.id, mine)
    # Its rows were given back (a stalled touch loop) and another instance took them.
    assert await store.recipients.requeue_held(ids, world.instance.id, mine) == 4
    again = await store.recipients.claim_pending(world.campaign.id, 4)
    assert again is not None
    handed = await store.recipients.hand_over(again.claim_id, ids, other.instance.id, theirs)
    assert handed.moved == ids
    # The first sender, still current, writes late results for them: not its rows now.
    now = datetime.now(UTC)
    late = [
        SendResult(ids[0], SendOutcome.FAILED, now, world.instance.id, 1, error_message="x"),
        SendResult(ids[1], SendOutcome.REQUEUE, now, world.instance.id, 1, error_message="x"),
    ]
    changed = await store.outcomes.apply_results(late, instance_id=world.instance.id, epoch=mine)
    assert changed == 0
    assert await _statuses(store, ids) == [R.SENDING] * 4
    # Their holder's results apply.
    own = [
        SendResult(ids[0], SendOutcome.FAILED, now, other.instance.id, 1, error_message="x"),
        SendResult(ids[1], SendOutcome.REQUEUE, now, other.instance.id, 1, error_message="x"),
    ]
    changed = await store.outcomes.apply_results(own, instance_id=other.instance.id, epoch=theirs)
    assert changed == 2
    assert await _statuses(store, ids) == [R.FAILED, R.PENDING, R.SENDING, R.SENDING]
    await assert_counters_exact(store, world.campaign.id)
