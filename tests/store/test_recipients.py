from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from dispatcher.errors import InvalidRecipientError, StoreError
from dispatcher.store import Store
from dispatcher.store.models import CampaignStatus, NewRecipient, RecipientStatus
from tests.store.conftest import MakeWorld, assert_counters_exact, phones

R = RecipientStatus


async def test_100k_recipients_stream_in_without_being_held_in_memory(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(running=False)
    n = 100_000

    async def rows() -> AsyncIterator[NewRecipient]:
        for i in range(n):
            if i % 2:
                yield NewRecipient(phone=f"+55119{i:08d}", variables={"name": f"n{i}"})
            else:
                yield NewRecipient(user_id=f"BR.{i:016d}")

    tracemalloc.start()
    try:
        assert (await store.recipients.ingest(world.campaign.id, rows())).rows == n
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 100,000 rows held at once take well over 20 MB; streamed, a few.
    assert peak < 12 * 1024 * 1024, peak
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert (campaign.total_recipients, campaign.pending) == (n, n)
    page = await store.recipients.page(world.campaign.id, limit=2)
    assert [(r.phone, r.user_id, r.variables) for r in page] == [
        (None, "BR.0000000000000000", None),
        ("+5511900000001", None, {"name": "n1"}),
    ]


async def test_an_invalid_row_rejects_the_whole_ingest(store: Store, make_world: MakeWorld) -> None:
    world = await make_world(3)
    bad = [*phones(5, start=100), NewRecipient(phone="11999"), *phones(5, start=200)]
    with pytest.raises(InvalidRecipientError) as caught:
        await store.recipients.ingest(world.campaign.id, bad)
    assert caught.value.index == 5
    with pytest.raises(InvalidRecipientError, match="exactly one"):
        await store.recipients.ingest(
            world.campaign.id, [NewRecipient(phone="+5511999999999", user_id="BR.1")]
        )
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert campaign.total_recipients == 3


async def test_a_finished_campaign_takes_no_recipients(store: Store, make_world: MakeWorld) -> None:
    world = await make_world()
    assert await store.campaigns.transition(world.campaign.id, CampaignStatus.CANCELLED)
    with pytest.raises(StoreError, match="cancelled"):
        await store.recipients.ingest(world.campaign.id, phones(1))


async def test_concurrent_claimers_never_get_the_same_recipient(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(5_000)
    claimed: list[list[int]] = [[], []]

    async def claimer(slot: int) -> None:
        while (claim := await store.recipients.claim_pending(world.campaign.id, 97)) is not None:
            claimed[slot].extend(r.id for r in claim.recipients)

    await asyncio.gather(claimer(0), claimer(1))
    first, second = set(claimed[0]), set(claimed[1])
    assert len(first) == len(claimed[0])
    assert len(second) == len(claimed[1])
    assert not first & second
    assert len(first | second) == 5_000
    assert first
    assert second
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert (campaign.pending, campaign.queued) == (0, 5_000)


async def test_claims_only_from_a_running_campaign_in_id_order(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(10, running=False)
    assert await store.recipients.claim_pending(world.campaign.id, 5) is None
    assert await store.campaigns.transition(world.campaign.id, CampaignStatus.RUNNING)
    first = await store.recipients.claim_pending(world.campaign.id, 4)
    second = await store.recipients.claim_pending(world.campaign.id, 4)
    assert first is not None
    assert second is not None
    assert first.claim_id != second.claim_id
    ids = [r.id for r in first.recipients] + [r.id for r in second.recipients]
    assert ids == sorted(ids)
    assert all(r.address.startswith("+55") for r in first.recipients)


async def test_mark_sending_only_moves_rows_still_in_the_claim(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(6)
    old = await store.recipients.claim_pending(world.campaign.id, 6)
    assert old is not None
    ids = [r.id for r in old.recipients]
    # The instance went down: its batch is requeued, and claimed again for another one.
    assert await store.recipients.requeue(old.claim_id, ids[:3]) == 3
    new = await store.recipients.claim_pending(world.campaign.id, 6)
    assert new is not None
    assert [r.id for r in new.recipients] == ids[:3]
    # A stale holder of the old batch gets only what is still its own.
    assert await store.recipients.mark_sending(old.claim_id, ids, world.instance.id) == ids[3:]
    assert await store.recipients.mark_sending(new.claim_id, ids, world.instance.id) == ids[:3]
    statuses = await store.recipients.statuses([*ids, 10**12])
    assert statuses == dict.fromkeys(ids, R.SENDING)
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert (campaign.pending, campaign.queued, campaign.sending) == (0, 0, 6)


async def test_requeue_stale_gives_back_rows_stuck_in_flight(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(4)
    claim = await store.recipients.claim_pending(world.campaign.id, 4)
    assert claim is not None
    assert await store.recipients.requeue_stale(world.campaign.id, timedelta(hours=1)) == 0
    assert await store.recipients.requeue_stale(world.campaign.id, timedelta(0)) == 4
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert campaign.pending == 4


async def test_rows_kept_alive_by_their_holder_are_not_stale(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(4)
    claim = await store.recipients.claim_pending(world.campaign.id, 4)
    assert claim is not None
    ids = [r.id for r in claim.recipients]
    await store.pool.execute(
        "UPDATE whatsapp_campaign_recipients SET updated_at = now() - interval '2 hours' "
        "WHERE id = ANY($1::bigint[])",
        ids,
    )
    assert await store.recipients.keep_alive(ids[:3]) == 3
    assert await store.recipients.requeue_stale(world.campaign.id, timedelta(hours=1)) == 1
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert (campaign.pending, campaign.queued) == (1, 3)


async def test_requeue_stale_leaves_sending_rows_to_the_in_doubt_path(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(4)
    claim = await store.recipients.claim_pending(world.campaign.id, 4)
    assert claim is not None
    ids = [r.id for r in claim.recipients]
    # Two were handed to a sender (they may have reached Meta); two were never started.
    assert await store.recipients.mark_sending(claim.claim_id, ids[:2], world.instance.id)
    assert await store.recipients.requeue_stale(world.campaign.id, timedelta(0)) == 2
    statuses = await store.recipients.statuses(ids)
    assert [statuses[i] for i in ids] == [R.SENDING, R.SENDING, R.PENDING, R.PENDING]
    await assert_counters_exact(store, world.campaign.id)


@pytest.mark.parametrize("status", [CampaignStatus.HELD, CampaignStatus.CANCELLED])
async def test_in_flight_rows_hold_portfolio_slots_whatever_the_campaign_status(
    store: Store, make_world: MakeWorld, status: CampaignStatus
) -> None:
    world = await make_world(3)
    claim = await store.recipients.claim_pending(world.campaign.id, 3)
    assert claim is not None
    ids = [r.id for r in claim.recipients]
    assert await store.recipients.mark_sending(claim.claim_id, ids[:2], world.instance.id)
    # Held or cancelled: its sending rows may still reach Meta (or be resent once in doubt).
    await store.pool.execute(
        "UPDATE whatsapp_campaigns SET status = $2 WHERE id = $1", world.campaign.id, status.value
    )
    in_flight = await store.recipients.in_flight_for_portfolio(world.instance.business_id)
    assert len(in_flight) == 3


async def test_listing_is_paginated_by_status(store: Store, make_world: MakeWorld) -> None:
    world = await make_world(7)
    await store.recipients.claim_pending(world.campaign.id, 3)
    queued = await store.recipients.page(world.campaign.id, status=R.QUEUED, limit=2)
    rest = await store.recipients.page(
        world.campaign.id, status=R.QUEUED, after_id=queued[-1].id, limit=2
    )
    assert len(queued) == 2
    assert len(rest) == 1
    assert all(r.status is R.QUEUED for r in queued + rest)
    counts = await store.recipients.count_by_status(world.campaign.id)
    assert (counts[R.PENDING], counts[R.QUEUED], counts[R.SENT]) == (4, 3, 0)
    assert await store.recipients.get(queued[0].id) == queued[0]
