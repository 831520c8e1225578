"""Alerts from the in-process coordinator (fake fleet and clock, real Postgres and Redis), to
a local Slack/Discord receiver: a campaign that completes, a number Meta stops through an
account_update (its token never posted), a 131064 portfolio hold; a dead receiver leaves the
coordinator ticking. Other tests share the database: posts are picked by their subject."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr

from dispatcher.alerts.config import AlertConfig
from dispatcher.alerts.sender import AlertSender
from dispatcher.alerts.watch import AlertWatch
from dispatcher.engine.account_webhooks import ACCOUNT_FIELD
from dispatcher.engine.batch import Batch
from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.meta.error_codes import ErrorClass
from dispatcher.queue.streams import WorkQueue
from dispatcher.store import Store
from dispatcher.store.models import (
    Campaign,
    CampaignStatus,
    Instance,
    SendOutcome,
    SendResult,
)
from tests.alerts.receiver import SECRET_PATH, Receiver, closed_port, receiver
from tests.engine.conftest import MakeCampaign, MakeInstance
from tests.engine.fakes import FakeClock, FakeFleet
from tests.engine.test_coordinator import core
from tests.engine.test_webhook_effects import disabled, handlers

TOKEN = "EAAGknowntoken" + uuid.uuid4().hex


def alert_config(slack: str, discord: str) -> AlertConfig:
    return AlertConfig(
        slack_url=SecretStr(slack),
        discord_url=SecretStr(discord),
        backoff_s=0.01,
        max_attempts=2,
        check_interval_s=10.0,
    )


@asynccontextmanager
async def watched(
    store: Store,
    queue: WorkQueue,
    coordinator: CoordinatorCore,
    clock: FakeClock,
    config: AlertConfig,
) -> AsyncIterator[AlertSender]:
    sender = AlertSender(config, clock=clock)
    sender.start()
    coordinator.alerts = AlertWatch(
        store, queue, sender, portfolios=coordinator.portfolio_stats, clock=clock
    )
    try:
        yield sender
    finally:
        await coordinator.alerts.aclose()
        await sender.aclose()


async def settled(coordinator: CoordinatorCore, sender: AlertSender) -> None:
    assert coordinator.alerts is not None
    await coordinator.alerts.idle()
    await sender.drain()


def about(recorder: Receiver, subject: str) -> dict[str, list[dict[str, Any]]]:
    """The posts whose fields name ``subject``, per service."""
    return {
        service: [p for p in posts if subject in str(p)]
        for service, posts in recorder.posts.items()
    }


async def test_a_campaign_completing_in_the_coordinator_posts_campaign_completed(
    store: Store, work_queue: WorkQueue, make_instance: MakeInstance, make_campaign: MakeCampaign
) -> None:
    instance = await make_instance()
    campaign = await make_campaign([instance], 5)
    clock = FakeClock()
    coordinator = core(store, work_queue, FakeFleet(), clock)
    async with receiver() as recorder:
        config = alert_config(recorder.url("slack"), recorder.url("discord"))
        async with watched(store, work_queue, coordinator, clock, config) as sender:
            await coordinator.start_campaign(campaign.id)
            await coordinator.tick()
            await settled(coordinator, sender)
            assert about(recorder, str(campaign.id)) == {"slack": [], "discord": []}

            [job] = await work_queue.read(instance.id, "actor", count=10)
            batch = Batch.from_json(job.batch)
            ids = [item.recipient_id for item in batch.items]
            await store.recipients.mark_sending(batch.claim_id, ids, instance.id)
            now = await store.pool.fetchval("SELECT now()")
            await store.outcomes.apply_results(
                [SendResult(i, SendOutcome.SENT, now, instance.id, wamid=f"w.{i}") for i in ids]
            )
            clock.advance(5)  # within the check interval: the tick completes, no check yet
            await coordinator.tick()
            found = await store.campaigns.get(campaign.id)
            assert found is not None
            assert found.status is CampaignStatus.COMPLETED
            await settled(coordinator, sender)
            assert about(recorder, str(campaign.id))["slack"] == []

            clock.advance(5)
            await coordinator.tick()
            await settled(coordinator, sender)
            clock.advance(10)
            await coordinator.tick()  # seen already: not posted twice
            await settled(coordinator, sender)
    posts = about(recorder, str(campaign.id))
    [slack], [discord] = posts["slack"], posts["discord"]
    assert slack["text"].startswith(f"Campaign {campaign.name} completed")
    embed = discord["embeds"][0]
    assert embed["title"] == f"Campaign {campaign.name} completed"
    assert {"name": "sent", "value": "5", "inline": True} in embed["fields"]


async def test_a_number_stopped_by_meta_and_a_portfolio_hold_post_without_the_token(
    store: Store, work_queue: WorkQueue, make_instance: MakeInstance, make_campaign: MakeCampaign
) -> None:
    waba = f"waba-{uuid.uuid4().hex[:8]}"
    banned = await store.instances.upsert(
        f"pn-{uuid.uuid4().hex[:8]}", f"biz-{uuid.uuid4().hex[:8]}", TOKEN, waba_id=waba
    )
    holding = await make_instance()
    campaign = await make_campaign([banned, holding], 40)
    clock = FakeClock()
    fleet = FakeFleet(errors={holding.id: ErrorClass.PORTFOLIO_HOLD.value})
    coordinator = core(store, work_queue, fleet, clock)
    async with receiver() as recorder:
        config = alert_config(recorder.url("slack"), recorder.url("discord"))
        async with watched(store, work_queue, coordinator, clock, config) as sender:
            await coordinator.start_campaign(campaign.id)
            await handlers(store, coordinator, fleet)[ACCOUNT_FIELD](disabled(waba, "DISABLE"))
            await coordinator.tick()
            await settled(coordinator, sender)
    stopped = about(recorder, str(banned.id))
    assert len(stopped["slack"]) == len(stopped["discord"]) == 1
    assert stopped["discord"][0]["embeds"][0]["title"] == f"Number {banned.phone_number_id} stopped"
    assert "DISABLED_UPDATE" in stopped["slack"][0]["text"]
    held = about(recorder, holding.business_id)
    assert [p["embeds"][0]["title"] for p in held["discord"]] == [
        f"Portfolio {holding.business_id} held by Meta"
    ]
    raw = recorder.raw()
    assert TOKEN not in raw
    assert SECRET_PATH not in raw


async def holding(
    store: Store, work_queue: WorkQueue, make_instance: MakeInstance, make_campaign: MakeCampaign
) -> tuple[Instance, Campaign, FakeClock, CoordinatorCore]:
    """A campaign on one number whose sends meet a 131064 portfolio hold."""
    instance = await make_instance()
    campaign = await make_campaign([instance], 30)
    clock = FakeClock()
    fleet = FakeFleet(errors={instance.id: ErrorClass.PORTFOLIO_HOLD.value})
    return instance, campaign, clock, core(store, work_queue, fleet, clock)


async def test_a_dead_receiver_leaves_the_coordinator_ticking(
    store: Store, work_queue: WorkQueue, make_instance: MakeInstance, make_campaign: MakeCampaign
) -> None:
    _, campaign, clock, coordinator = await holding(store, work_queue, make_instance, make_campaign)
    dead = f"http://127.0.0.1:{closed_port()}/x/{SECRET_PATH}"
    async with watched(store, work_queue, coordinator, clock, alert_config(dead, dead)) as sender:
        await coordinator.start_campaign(campaign.id)
        for _ in range(3):
            await coordinator.tick()
            clock.advance(10)
        await settled(coordinator, sender)
        assert coordinator.ticks == 3
        assert coordinator.alerts is not None
        assert coordinator.alerts.checks == 3
        assert sender.failed >= 2
        assert sender.posted == 0


async def test_a_hold_no_service_took_is_posted_again_while_it_lasts(
    store: Store, work_queue: WorkQueue, make_instance: MakeInstance, make_campaign: MakeCampaign
) -> None:
    instance, campaign, clock, coordinator = await holding(
        store, work_queue, make_instance, make_campaign
    )
    async with receiver() as recorder:
        recorder.down = True
        config = alert_config(recorder.url("slack"), recorder.url("discord"))
        async with watched(store, work_queue, coordinator, clock, config) as sender:
            await coordinator.start_campaign(campaign.id)
            await coordinator.tick()  # the hold begins: both services give it up
            await settled(coordinator, sender)
            assert about(recorder, instance.business_id) == {"slack": [], "discord": []}
            recorder.down = False
            clock.advance(60)  # rearm_after_s, by default
            await coordinator.tick()  # still held: raised again, long before the window
            await settled(coordinator, sender)
            clock.advance(config.check_interval_s)
            await coordinator.tick()  # delivered now: not again
            await settled(coordinator, sender)
    held = about(recorder, instance.business_id)
    assert len(held["slack"]) == len(held["discord"]) == 1
