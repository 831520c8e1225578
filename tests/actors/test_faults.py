"""Faults mid-campaign: a killed actor, an expired token, a flaky Graph API, a restarted
coordinator. Every campaign still completes, nothing is lost, nothing is sent twice."""

from __future__ import annotations

import uuid

import ray

from actors.instance import actor_name
from dispatcher import operations
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from dispatcher.store.models import Campaign, InstanceStatus, NewRecipient, RecipientStatus
from tests.actors.test_campaign import TEMPLATE, finished, register_all, run_campaign
from tests.stack import Stack, wait_until


async def sent_at_least(store: Store, campaign_id: uuid.UUID, count: int) -> Campaign | None:
    campaign = await store.campaigns.get(campaign_id)
    assert campaign is not None
    return campaign if campaign.total_sent >= count else None


async def assert_exactly_once(store: Store, control: SandboxControl, campaign: Campaign) -> None:
    done = await store.campaigns.get(campaign.id)
    assert done is not None
    failed = await store.recipients.page(campaign.id, status=RecipientStatus.FAILED, limit=5)
    assert not failed, [(r.error_code, r.error_message, r.attempts) for r in failed]
    assert done.total_sent == done.total_recipients
    assert done.total_failed == 0
    audit = await control.audit()
    assert audit["duplicate_sends"] == 0, audit["duplicate_examples"]
    assert audit["accepted"] == done.total_recipients
    assert audit["unique_callback_data"] == done.total_recipients


async def test_a_killed_instance_actor_restarts_and_nothing_is_lost_or_sent_twice(
    stack: Stack, store: Store
) -> None:
    control = SandboxControl(stack.sandbox.url)
    await control.reset()
    ids = await register_all(store, stack, ["6001"])
    campaign = await run_campaign(store, stack, ids, 3_000, 21)
    await wait_until(lambda: sent_at_least(store, campaign.id, 600), timeout_s=60)
    actor = ray.get_actor(actor_name("6001"), namespace=stack.deployment.namespace)
    ray.kill(actor, no_restart=False)  # mid-campaign, sends in flight
    await wait_until(lambda: finished(store, campaign.id), timeout_s=120)
    await assert_exactly_once(store, control, campaign)
    await control.aclose()


async def test_an_expired_token_stops_the_number_and_its_work_moves_to_the_others(
    stack: Stack, store: Store
) -> None:
    control = SandboxControl(stack.sandbox.url)
    await control.reset()
    ids = await register_all(store, stack, ["6002", "6001"])
    await control.faults(expire_token="6002")
    campaign = await run_campaign(store, stack, ids, 1_000, 22)
    await wait_until(lambda: finished(store, campaign.id), timeout_s=120)
    await assert_exactly_once(store, control, campaign)
    instance = await store.instances.get(ids[0])
    assert instance is not None
    assert instance.status is InstanceStatus.ERROR
    assert instance.status_reason is not None
    assert "190" in instance.status_reason
    stats = await stack.coordinator.instance_stats.remote(str(ids[0]))
    assert stats["state"] == "error"
    assert stats["error_class"] == "permanent_instance"
    audit = await control.audit()
    assert audit["numbers"]["6002"]["accepted"] == 0
    assert audit["numbers"]["6002"]["errors"] == {"190": audit["numbers"]["6002"]["received"]}
    await control.faults(clear=True)
    await control.aclose()


async def test_a_graph_api_failing_30_percent_still_completes_the_campaign(
    stack: Stack, store: Store
) -> None:
    control = SandboxControl(stack.sandbox.url)
    await control.reset()
    ids = await register_all(store, stack, ["6001"])
    await control.faults(error_5xx_ratio=0.3)
    campaign = await run_campaign(store, stack, ids, 1_000, 27)
    await wait_until(lambda: finished(store, campaign.id), timeout_s=120)
    await assert_exactly_once(store, control, campaign)
    audit = await control.audit()
    assert audit["faults_injected"]["5xx"] > 100
    await control.faults(clear=True)
    await control.aclose()


async def test_a_restarted_coordinator_picks_its_campaigns_up(stack: Stack, store: Store) -> None:
    control = SandboxControl(stack.sandbox.url)
    await control.reset()
    ids = await register_all(store, stack, ["6001"])
    campaign = await run_campaign(store, stack, ids, 2_000, 24)
    await wait_until(lambda: sent_at_least(store, campaign.id, 300), timeout_s=60)
    ray.kill(stack.coordinator, no_restart=False)
    await wait_until(lambda: finished(store, campaign.id), timeout_s=120)
    await assert_exactly_once(store, control, campaign)
    assert (await stack.coordinator.ping.remote())["ready"]
    await control.aclose()


async def test_dead_letters_fail_the_message_and_retry_dlq_sends_it_after_all(
    stack: Stack, store: Store
) -> None:
    control = SandboxControl(stack.sandbox.url)
    await control.reset()
    ids = await register_all(store, stack, ["6001"])
    await control.faults(error_5xx_ratio=1.0)  # every attempt fails: retries run out
    # Few messages: with every attempt failing, the breaker lets only a few probes a second.
    # No automatic retry (the default retries transient exhaustion 5 minutes later): the
    # dead letters are the operator's here.
    campaign = await operations.create_campaign(
        store,
        name="dead-letters",
        template=TEMPLATE,
        instance_ids=ids,
        recipients=(NewRecipient(phone=f"+55249{i:08d}") for i in range(5)),
        retry_policy={"rules": []},
    )
    assert await stack.coordinator.start_campaign.remote(str(campaign.id))
    done = await wait_until(lambda: finished(store, campaign.id), timeout_s=120)
    assert (done.total_failed, done.total_sent) == (5, 0)
    failed = await store.recipients.page(campaign.id, status=RecipientStatus.FAILED, limit=1)
    assert failed[0].error_message is not None
    assert "retries exhausted" in failed[0].error_message
    stats = await stack.coordinator.stats.remote()
    assert stats["queues"]["campaigns"]["dlq"] >= 1

    await control.faults(clear=True)
    result = await stack.coordinator.queue_action.remote("retry_dlq", "campaigns", None)
    assert result["revived"] >= 5  # other tests' dead letters are revived too
    assert result["campaigns_reopened"] >= 1
    await wait_until(lambda: finished(store, campaign.id), timeout_s=60)
    await assert_exactly_once(store, control, campaign)
    await control.aclose()
