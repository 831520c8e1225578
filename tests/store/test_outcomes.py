from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.policies.messaging_limit import MessagingLimitGate
from dispatcher.store import Store
from dispatcher.store.models import (
    ClaimedRecipient,
    RecipientStatus,
    SendOutcome,
    SendResult,
    StatusUpdate,
)
from tests.store.conftest import MakeWorld, World, assert_counters_exact

R = RecipientStatus
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def _sending(store: Store, world: World, n: int) -> list[ClaimedRecipient]:
    claim = await store.recipients.claim_pending(world.campaign.id, n)
    assert claim is not None
    ids = [r.id for r in claim.recipients]
    assert await store.recipients.mark_sending(claim.claim_id, ids, world.instance.id) == ids
    return claim.recipients


def _sent(recipient_id: int, world: World, at: datetime = T0, attempts: int = 1) -> SendResult:
    return SendResult(
        recipient_id,
        SendOutcome.SENT,
        at,
        instance_id=world.instance.id,
        attempts=attempts,
        wamid=f"wamid.{recipient_id}",
    )


async def test_send_results_move_sending_rows_and_the_counters(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(5)
    a, b, c, d, _ = (r.id for r in await _sending(store, world, 5))
    results = [
        _sent(a, world, attempts=2),
        SendResult(b, SendOutcome.FAILED, T0, world.instance.id, 1, None, 131026, "undeliverable"),
        SendResult(c, SendOutcome.REQUEUE, T0, world.instance.id, 3, None, 190, "token"),
        # Two reports for one recipient in one flush: the send that went through wins.
        SendResult(d, SendOutcome.REQUEUE, T0, world.instance.id, 1),
        _sent(d, world),
    ]
    assert await store.outcomes.apply_results(results) == 4
    got = {i: await store.recipients.get(i) for i in (a, b, c, d)}
    assert got[a] is not None
    assert got[b] is not None
    assert got[c] is not None
    assert (got[a].status, got[a].wamid, got[a].attempts, got[a].sent_at) == (
        R.SENT,
        f"wamid.{a}",
        2,
        T0,
    )
    assert got[a].instance_id == world.instance.id
    assert (got[b].status, got[b].error_code, got[b].sent_at) == (R.FAILED, 131026, None)
    assert (got[c].status, got[c].claim_id, got[c].attempts) == (R.PENDING, None, 3)
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert (campaign.total_sent, campaign.total_failed, campaign.pending, campaign.sending) == (
        2,
        1,
        1,
        1,
    )
    # A flush retried after a crash changes nothing.
    assert await store.outcomes.apply_results(results[:3]) == 1  # only the SENT refreshes
    again = await assert_counters_exact(store, world.campaign.id)
    assert (again.total_sent, again.total_failed, again.pending) == (2, 1, 1)


async def test_a_webhook_ahead_of_the_send_result_is_not_undone(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(2)
    a, b = (r.id for r in await _sending(store, world, 2))
    # Meta's webhooks beat the actor's flush (matched by the id in biz_opaque_callback_data).
    await store.outcomes.apply_statuses(
        [
            StatusUpdate(R.READ, T0 + timedelta(seconds=5), f"wamid.{a}", a),
            StatusUpdate(R.SENT, T0 + timedelta(seconds=1), f"wamid.{b}", b),
        ]
    )
    await store.outcomes.apply_results(
        [
            _sent(a, world, at=T0),
            SendResult(b, SendOutcome.FAILED, T0, world.instance.id, 2, None, 1, "timeout"),
            SendResult(b, SendOutcome.REQUEUE, T0, world.instance.id, 2),
        ]
    )
    ra, rb = await store.recipients.get(a), await store.recipients.get(b)
    assert ra is not None
    assert rb is not None
    assert (ra.status, ra.sent_at, ra.attempts) == (R.READ, T0, 1)
    assert rb.status is R.SENT
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert (campaign.total_sent, campaign.total_delivered, campaign.total_read) == (2, 1, 1)


async def test_failed_after_sent_keeps_it_counted_as_sent(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(1)
    (r,) = await _sending(store, world, 1)
    await store.outcomes.apply_results([_sent(r.id, world)])
    failed = StatusUpdate(R.FAILED, T0 + timedelta(seconds=3), f"wamid.{r.id}", None, 131026, "x")
    assert await store.outcomes.apply_statuses([failed]) == 1
    late = StatusUpdate(R.DELIVERED, T0 + timedelta(seconds=2), f"wamid.{r.id}")
    await store.outcomes.apply_statuses([late])
    row = await store.recipients.by_wamid(f"wamid.{r.id}")
    assert row is not None
    assert (row.status, row.error_code) == (R.FAILED, 131026)
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert (campaign.total_sent, campaign.total_failed, campaign.total_delivered) == (1, 1, 0)


async def test_statuses_for_unknown_messages_are_dropped(store: Store) -> None:
    unknown = StatusUpdate(R.DELIVERED, T0, "wamid.nobody", 10**12)
    assert await store.outcomes.apply_statuses([unknown]) == 0


# Per message, the statuses Meta may send, each with its time: shuffled and split into
# flushes, they must leave exactly what applying them in time order leaves.
_events = st.lists(
    st.lists(
        st.sampled_from([R.SENT, R.DELIVERED, R.READ, R.FAILED]), min_size=1, max_size=4
    ).flatmap(lambda kinds: st.permutations(kinds)),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=_events, seed=st.integers(0, 2**32 - 1), by_wamid=st.booleans())
async def test_statuses_move_forward_whatever_order_they_arrive_in(
    store: Store,
    make_world: MakeWorld,
    messages: list[list[RecipientStatus]],
    seed: int,
    by_wamid: bool,
) -> None:
    world = await make_world(len(messages))
    recipients = await _sending(store, world, len(messages))
    updates: list[StatusUpdate] = []
    for recipient, kinds in zip(recipients, messages, strict=True):
        for offset, kind in enumerate(sorted(kinds, key=list(R).index)):
            error = 131026 if kind is R.FAILED else None
            updates.append(
                StatusUpdate(
                    kind,
                    T0 + timedelta(seconds=offset),
                    wamid=f"wamid.{recipient.id}" if by_wamid else None,
                    recipient_id=recipient.id,
                    error_code=error,
                )
            )
    if by_wamid:  # the send results carry the wamids the webhooks are matched by
        await store.outcomes.apply_results([_sent(r.id, world) for r in recipients])
    rng = random.Random(seed)
    rng.shuffle(updates)
    cut = sorted(rng.sample(range(len(updates) + 1), k=min(3, len(updates) + 1)))
    for start, end in zip([0, *cut], [*cut, len(updates)], strict=True):
        await store.outcomes.apply_statuses(updates[start:end])

    campaign = await assert_counters_exact(store, world.campaign.id)
    for recipient, kinds in zip(recipients, messages, strict=True):
        row = await store.recipients.get(recipient.id)
        assert row is not None
        assert row.status is max(kinds, key=list(R).index)
        assert row.sent_at is not None  # any status means Meta accepted it
        assert (row.failed_at is not None) == (R.FAILED in kinds)
        assert (row.error_code == 131026) == (R.FAILED in kinds)
    final = [max(kinds, key=list(R).index) for kinds in messages]
    assert campaign.total_sent == len(messages)
    assert campaign.total_delivered == sum(s in (R.DELIVERED, R.READ) for s in final)
    assert campaign.total_read == final.count(R.READ)
    assert campaign.total_failed == final.count(R.FAILED)


async def test_counters_stay_exact_under_concurrent_flushes(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(600)
    recipients = await _sending(store, world, 600)
    ids = [r.id for r in recipients]
    rng = random.Random(7)
    statuses = [
        StatusUpdate(rng.choice([R.SENT, R.DELIVERED, R.READ, R.FAILED]), T0, None, i)
        for i in ids
        for _ in range(2)
    ]
    results = [_sent(i, world) for i in ids[::2]] + [
        SendResult(i, SendOutcome.FAILED, T0, world.instance.id) for i in ids[1::2]
    ]
    work = [statuses[k : k + 50] for k in range(0, len(statuses), 50)]
    rng.shuffle(work)

    async def flush_statuses(chunk: list[StatusUpdate]) -> None:
        await store.outcomes.apply_statuses(chunk)

    async def flush_results(chunk: list[SendResult]) -> None:
        await store.outcomes.apply_results(chunk)

    await asyncio.gather(
        *(flush_statuses(chunk) for chunk in work),
        *(flush_results(results[k : k + 40]) for k in range(0, len(results), 40)),
    )
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert campaign.sending == 0
    assert campaign.total_sent >= 300


async def test_sends_rebuild_the_portfolio_messaging_limit_window(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(3)
    a, b, c = await _sending(store, world, 3)
    now = datetime.now(UTC)
    await store.outcomes.apply_results(
        [
            _sent(a.id, world, at=now - timedelta(hours=30)),  # outside the window
            _sent(b.id, world, at=now - timedelta(hours=2)),
        ]
    )
    # c was accepted but its result was lost: the webhook alone enters it in the window.
    await store.outcomes.apply_statuses([StatusUpdate(R.SENT, now, None, c.id)])
    window = dict(await store.portfolios.window(world.instance.business_id))
    assert set(window) == {b.address, c.address}
    assert 7000 < window[b.address] < 7400

    clock_now = 1_000_000.0
    history = await store.portfolios.gate_history(world.instance.business_id, lambda: clock_now)
    gate = MessagingLimitGate.from_history(2, history, clock=lambda: clock_now)
    assert gate.used() == 2
    assert gate.reserve(["+5511988887777"]).deferred == ["+5511988887777"]
    assert await store.portfolios.prune_contacts() >= 1


async def test_a_failure_keeps_metas_error_details(store: Store, make_world: MakeWorld) -> None:
    world = await make_world(1)
    (r,) = await _sending(store, world, 1)
    await store.outcomes.apply_results([_sent(r.id, world)])
    failed = StatusUpdate(
        R.FAILED, T0, f"wamid.{r.id}", None, 131026, "Message undeliverable", "Undeliverable."
    )
    assert await store.outcomes.apply_statuses([failed]) == 1
    row = await store.recipients.by_wamid(f"wamid.{r.id}")
    assert row is not None
    assert (row.error_code, row.error_message, row.error_details) == (
        131026,
        "Message undeliverable",
        "Undeliverable.",
    )


async def test_a_known_wamid_wins_over_the_recipient_id(
    store: Store, make_world: MakeWorld
) -> None:
    """A status is steered by its wamid when we know it: no recipient id that comes with it
    can move another row."""
    world = await make_world(2)
    a, b = await _sending(store, world, 2)
    await store.outcomes.apply_results([_sent(a.id, world)])
    update = StatusUpdate(R.FAILED, T0, f"wamid.{a.id}", b.id, 131026, "x")
    assert await store.outcomes.apply_statuses([update]) == 1
    rows = {r.id: r for r in await store.recipients.page(world.campaign.id, limit=10)}
    assert rows[a.id].status is R.FAILED
    assert rows[b.id].status is R.SENDING
