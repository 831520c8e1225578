"""What Meta's operational webhooks do to the engine, in-process (a fake fleet and clock, the
real Postgres and Redis): account_update stops and reinstates numbers without touching a
131064 hold; template status webhooks hold only their WABA's campaigns; a webhook-driven
limit change never loses the reservations routing makes meanwhile."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from dispatcher.engine.account_webhooks import ACCOUNT_FIELD
from dispatcher.engine.config import EngineConfig
from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.engine.webhook_handlers import WebhookContext, webhook_handlers
from dispatcher.meta.tiers import MessagingTier
from dispatcher.meta.webhooks import Change
from dispatcher.queue.streams import WorkQueue
from dispatcher.store import Store
from dispatcher.store.models import CampaignStatus, Instance, InstanceStatus, LimitSource
from tests.engine.conftest import TEMPLATE, MakeCampaign
from tests.engine.fakes import FakeClock, FakeFleet
from tests.engine.test_coordinator import take, waiting

TEMPLATE_FIELD = "message_template_status_update"


def handlers(store: Store, core: CoordinatorCore, fleet: FakeFleet) -> Any:
    return webhook_handlers(WebhookContext(store, core, fleet))  # type: ignore[arg-type]


def new_core(store: Store, queue: WorkQueue, fleet: FakeFleet, **config: object) -> CoordinatorCore:
    tunables = {"batch_size": 10, "queued_batches_per_instance": 2, **config}
    return CoordinatorCore(store, queue, fleet, EngineConfig(**tunables), FakeClock())  # type: ignore[arg-type]


async def number(store: Store, waba_id: str | None, business_id: str | None = None) -> Instance:
    tag = uuid.uuid4().hex[:10]
    return await store.instances.upsert(
        f"pn-{tag}", business_id or f"biz-{tag}", f"token-{tag}", waba_id=waba_id
    )


def disabled(waba_id: str, state: str) -> Change:
    value = {"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": state}}
    return Change(ACCOUNT_FIELD, value, waba_id)


async def test_account_update_stops_the_actor_and_keeps_a_131064_hold(
    store: Store, work_queue: WorkQueue, make_campaign: MakeCampaign
) -> None:
    waba = f"waba-{uuid.uuid4().hex[:8]}"
    banned = await number(store, waba)
    other = await number(store, None, banned.business_id)  # same portfolio, another WABA
    campaign = await make_campaign([banned], 40)
    fleet = FakeFleet()
    core = new_core(store, work_queue, fleet)
    await core.start_campaign(campaign.id)
    await core.tick()
    assert await waiting(work_queue, banned.id) == 2
    # Meta holds the portfolio (131064, on the other number) before the ban.
    assert await store.holds.hold(banned.business_id, "131064 on number x")
    await core.recover()  # the coordinator reads holds set elsewhere
    assert core.portfolio_stats()[banned.business_id]["held"]
    table = handlers(store, core, fleet)

    await table[ACCOUNT_FIELD](disabled(waba, "DISABLE"))
    assert fleet.halted == [banned.id]  # the running actor stops sending
    assert not fleet.usable(banned.id)
    assert await waiting(work_queue, banned.id) == 0  # its queued batches rerouted
    stopped = await store.instances.get(banned.id)
    assert stopped is not None
    assert stopped.status is InstanceStatus.ERROR
    assert await store.holds.get(banned.business_id) is not None  # Meta's hold stays

    await table[ACCOUNT_FIELD](disabled(waba, "REINSTATE"))
    assert fleet.restarted == [banned.id]  # a new actor: the number sends again
    back = await store.instances.get(banned.id)
    assert back is not None
    assert back.status is InstanceStatus.ACTIVE
    assert await store.holds.get(banned.business_id) is not None  # still Meta's to lift
    await core.tick()
    assert core.portfolio_stats()[banned.business_id]["held"]
    assert await waiting(work_queue, banned.id) == 0  # held: nothing routed
    assert other.id not in fleet.halted


async def test_template_status_holds_and_releases_only_its_wabas_campaigns(
    store: Store, work_queue: WorkQueue, make_campaign: MakeCampaign
) -> None:
    waba, elsewhere = f"waba-{uuid.uuid4().hex[:8]}", f"waba-{uuid.uuid4().hex[:8]}"
    ours = await make_campaign([await number(store, waba)], 5)
    theirs = await make_campaign([await number(store, elsewhere)], 5)
    unknown = await make_campaign([await number(store, None)], 5)  # registered without WABA
    fleet = FakeFleet()
    core = new_core(store, work_queue, fleet)
    for campaign in (ours, theirs, unknown):
        await core.start_campaign(campaign.id)
    table = handlers(store, core, fleet)
    value = {
        "event": "PAUSED",
        "message_template_name": TEMPLATE["name"],
        "message_template_language": TEMPLATE["language"]["code"],  # type: ignore[index]
    }

    async def statuses() -> list[CampaignStatus]:
        found = [await store.campaigns.get(c.id) for c in (ours, theirs, unknown)]
        return [c.status for c in found if c is not None]

    await table[TEMPLATE_FIELD](Change(TEMPLATE_FIELD, value, waba))
    held, running = CampaignStatus.HELD, CampaignStatus.RUNNING
    # The other WABA's campaign sends its own template of that name: it runs on. A campaign
    # whose numbers have no known WABA matches by name and language, as before.
    assert await statuses() == [held, running, held]

    await table[TEMPLATE_FIELD](Change(TEMPLATE_FIELD, {**value, "event": "PAUSED"}, elsewhere))
    assert await statuses() == [held, held, held]
    await table[TEMPLATE_FIELD](Change(TEMPLATE_FIELD, {**value, "event": "APPROVED"}, waba))
    assert await statuses() == [running, held, running]


async def test_a_webhook_limit_change_keeps_reservations_routed_meanwhile(
    store: Store, work_queue: WorkQueue, make_campaign: MakeCampaign
) -> None:
    instance = await number(store, None)
    business = instance.business_id
    await store.portfolios.record_detected(
        business, MessagingTier.TIER_UNLIMITED, LimitSource.GRAPH_API
    )
    fleet = FakeFleet()
    core = new_core(store, work_queue, fleet, batch_size=50, queued_batches_per_instance=10)
    first = await make_campaign([instance], 1)
    await core.start_campaign(first.id)
    await core.tick()  # the portfolio's state exists, unlimited
    assert core.portfolio_stats()[business]["daily_limit"] is None
    campaign = await make_campaign([instance], 600, start=1)
    # Running but not routed yet (a send routes at once): the tick below routes it.
    assert await store.campaigns.transition(campaign.id, CampaignStatus.RUNNING)

    # Hold the old rebuild after its in-flight read (at its hold read) until routing has run.
    gate_open = asyncio.Event()
    reached = asyncio.Event()
    real_get = store.holds.get
    paused = False

    async def pause() -> None:
        nonlocal paused
        if not paused:
            paused = True
            reached.set()
            await gate_open.wait()

    async def held_get(business_id: str) -> Any:
        await pause()
        return await real_get(business_id)

    store.holds.get = held_get  # type: ignore[method-assign]
    try:
        limited = await store.portfolios.record_detected(
            business, MessagingTier.TIER_250, LimitSource.WEBHOOK
        )
        change = asyncio.create_task(core.apply_limit(limited))
        for _ in range(1000):  # until it waits on Postgres, or is done (at most ~10 s)
            if reached.is_set() or change.done():
                break
            await asyncio.sleep(0.01)
        await core.tick()  # routing while the limit change is under way
        gate_open.set()
        await asyncio.wait_for(change, 10)
    finally:
        store.holds.get = real_get  # type: ignore[method-assign]
        gate_open.set()
    for _ in range(5):
        routed = await take(work_queue, instance.id)
        await core.tick()
        if not routed:
            break
    counts = await store.recipients.count_by_status(campaign.id)
    in_flight_or_sent = sum(n for status, n in counts.items() if status.value != "pending")
    assert in_flight_or_sent > 0
    assert in_flight_or_sent + 1 <= 250, counts
    assert core.portfolio_stats()[business]["daily_unique_used"] <= 250
