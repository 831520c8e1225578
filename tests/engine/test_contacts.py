"""The coordinator and the portfolio contacts: pruned past the window in bounded batches,
and never read for a portfolio whose limit is unlimited (its window may be millions)."""

from __future__ import annotations

import uuid
from typing import Any, cast

import asyncpg

from dispatcher.engine.config import EngineConfig
from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.meta.tiers import MessagingTier
from dispatcher.queue.streams import WorkQueue
from dispatcher.store import Store
from tests.engine.conftest import MakeCampaign, MakeInstance
from tests.engine.fakes import FakeClock, FakeFleet

ANCIENT_DAYS = 500
"""Older than any contact another test records: a prune takes these first."""


class RecordingPool:
    """The real pool, with every statement sent through it noted (sql, args)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.sent: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._pool, name)
        if name not in ("fetch", "fetchrow", "fetchval", "execute"):
            return method

        async def recorded(sql: str, *args: Any) -> Any:
            self.sent.append((sql, args))
            return await method(sql, *args)

        return recorded


async def _add_contacts(store: Store, business_id: str, old: int, recent: int) -> None:
    await store.portfolios.ensure(business_id)
    await store.pool.execute(
        """
        INSERT INTO whatsapp_portfolio_contacts
            (business_id, recipient, first_sent_at, last_sent_at)
        SELECT $1, '+5511' || lpad(n::text, 9, '0'), t, t
        FROM generate_series(1, $2::int + $3::int) AS n,
             LATERAL (SELECT CASE WHEN n <= $2 THEN now() - make_interval(days => $4)
                                  ELSE now() - interval '2 hours' END AS t) AS at
        """,
        business_id,
        old,
        recent,
        ANCIENT_DAYS,
    )


async def _count(store: Store, business_id: str) -> int:
    return int(
        await store.pool.fetchval(
            "SELECT count(*) FROM whatsapp_portfolio_contacts WHERE business_id = $1",
            business_id,
        )
    )


async def test_the_coordinator_prunes_old_contacts_in_bounded_batches_every_interval(
    store: Store, work_queue: WorkQueue
) -> None:
    business = f"biz-{uuid.uuid4().hex[:10]}"
    await _add_contacts(store, business, old=25, recent=3)
    clock = FakeClock()
    config = EngineConfig(
        contacts_prune_interval_s=300, contacts_prune_batch=10, contacts_prune_max_batches=2
    )
    coordinator = CoordinatorCore(store, work_queue, FakeFleet(), config, clock)

    await coordinator.tick()  # two batches of ten: the backlog is worked off over rounds
    assert await _count(store, business) == 3 + 5
    clock.advance(299)
    await coordinator.tick()  # not yet: once per interval
    assert await _count(store, business) == 3 + 5
    clock.advance(1)
    await coordinator.tick()
    assert await _count(store, business) == 3  # the window's contacts stay


async def _history_reads(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
    tier: MessagingTier,
) -> list[str]:
    """Statements a coordinator sent to rebuild the gate of a portfolio at ``tier`` that has
    a window of contacts, while routing its campaign."""
    instance = await make_instance()
    await store.portfolios.set_override(instance.business_id, tier)
    await _add_contacts(store, instance.business_id, old=0, recent=50)
    campaign = await make_campaign([instance], 20)
    recording = RecordingPool(store.pool)
    coordinator = CoordinatorCore(
        Store.over(cast(asyncpg.Pool, recording), store.keyring),
        work_queue,
        FakeFleet(),
        EngineConfig(batch_size=10),
        FakeClock(),
    )
    await coordinator.start_campaign(campaign.id)
    await coordinator.tick()
    assert coordinator.routed_recipients == 20
    return [
        sql
        for sql, args in recording.sent
        if instance.business_id in args
        and ("whatsapp_portfolio_contacts" in sql or "instance_ids &&" in sql)
    ]


async def test_an_unlimited_portfolio_loads_no_contact_history(
    store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    make_campaign: MakeCampaign,
) -> None:
    reads = await _history_reads(
        store, work_queue, make_instance, make_campaign, MessagingTier.TIER_UNLIMITED
    )
    assert reads == []
    # A limited portfolio's gate reads its window and its sends in flight (the check above
    # can fail).
    reads = await _history_reads(
        store, work_queue, make_instance, make_campaign, MessagingTier.TIER_250
    )
    assert len(reads) == 2
