"""Fencing and in-doubt sends, in-process: real Redis and Postgres, the sandbox over HTTP.

A replaced instance worker stops sending its batch at once; two coordinators on one
database, one active; a send whose answer timed out after Meta took it is not sent twice;
in-doubt sends settled by webhook, or by each policy once the bound passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from dispatcher.engine.config import EngineConfig
from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.engine.instance import InstanceWorker
from dispatcher.engine.webhooks import WebhookApplier
from dispatcher.meta.client import MetaClient
from dispatcher.meta.transport import PoolConfig
from dispatcher.queue import Queues
from dispatcher.sandbox.config import NumberConfig, PortfolioConfig, SandboxConfig, WebhookConfig
from dispatcher.sandbox.control import SandboxControl
from dispatcher.sandbox.server import SandboxProcess, free_port
from dispatcher.store import Store
from dispatcher.store.models import (
    CampaignStatus,
    InDoubtPolicy,
    Instance,
    NewRecipient,
    RecipientStatus,
)
from tests.engine.fakes import FakeFleet, wait_for

R = RecipientStatus
ACCEPTED = {R.SENT, R.DELIVERED, R.READ}
TEMPLATE = {"name": "hello_world", "language": {"code": "en_US"}, "components": []}


@dataclass
class Inbox:
    """Signed webhooks the sandbox posted, queued as the API would queue them."""

    payloads: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
async def inbox() -> AsyncIterator[tuple[str, Inbox]]:
    box = Inbox()

    async def handle(request: web.Request) -> web.Response:
        box.payloads.append(orjson.loads(await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/webhook", box
    await runner.cleanup()


def _config(url: str, pid: str, mps: int) -> SandboxConfig:
    return SandboxConfig(
        numbers=[
            NumberConfig(
                phone_number_id=pid, token=f"tok-{pid}", business_id=f"b{pid}", throughput_mps=mps
            )
        ],
        portfolios=[PortfolioConfig(business_id=f"b{pid}")],
        webhook=WebhookConfig(
            url=url,
            app_secret="secret",
            sent_delay_s=0.0,
            delivered_delay_s=0.05,
            read_ratio=0.0,
            flush_interval_s=0.05,
        ),
    )


@pytest.fixture(scope="module")
def sandbox_process(inbox: tuple[str, Inbox]) -> Any:
    with SandboxProcess(_config(inbox[0], "1", 80)) as process:
        yield process


@dataclass
class Env:
    store: Store
    queues: Queues
    sandbox: SandboxControl
    url: str
    inbox: Inbox
    pid: str
    instance: Instance
    clients: list[MetaClient] = field(default_factory=list)

    async def campaign(self, n: int) -> tuple[UUID, list[int]]:
        campaign = await self.store.campaigns.create("fencing", TEMPLATE, [self.instance.id])
        base = random.randrange(10**7)
        await self.store.recipients.ingest(
            campaign.id, [NewRecipient(phone=f"+55119{base + i:08d}") for i in range(n)]
        )
        assert await self.store.campaigns.transition(campaign.id, CampaignStatus.RUNNING)
        rows = await self.store.recipients.page(campaign.id, limit=n)
        return campaign.id, [r.id for r in rows]

    async def statuses(self, ids: list[int]) -> list[RecipientStatus]:
        found = await self.store.recipients.statuses(ids)
        return [found[i] for i in ids]

    async def accepted(self) -> dict[str, int]:
        """Recipient -> sends the sandbox accepted for our number."""
        counts: dict[str, int] = {}
        for record in await self.sandbox.requests(limit=10_000):
            if record["phone_number_id"] == self.pid and record["status"] == 200:
                counts[record["recipient"]] = counts.get(record["recipient"], 0) + 1
        return counts

    async def apply_webhooks(self, applier: WebhookApplier) -> None:
        payloads, self.inbox.payloads = self.inbox.payloads, []
        if payloads:
            await self.queues.webhooks.push_many(payloads)
        while await applier.apply_once():
            pass


@pytest.fixture
async def env(
    store: Store,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    sandbox_process: SandboxProcess,
    inbox: tuple[str, Inbox],
) -> AsyncIterator[Env]:
    pid = str(random.randrange(10**9, 10**10))
    control = SandboxControl(sandbox_process.url)
    await control.reset(_config(inbox[0], pid, 80))
    inbox[1].payloads.clear()
    instance = await store.instances.upsert(pid, f"b{pid}", f"tok-{pid}", throughput_mps=80)
    made = Env(
        store,
        Queues(redis_client, prefix=redis_prefix),
        control,
        sandbox_process.url,
        inbox[1],
        pid,
        instance,
    )
    yield made
    await control.aclose()
    for client in made.clients:
        await client.aclose()


def _worker(env: Env, config: EngineConfig, mps: float, timeout_s: float = 5.0) -> InstanceWorker:
    client = MetaClient(env.url, "v23.0", pool=PoolConfig(request_timeout_s=timeout_s))
    env.clients.append(client)
    return InstanceWorker(
        instance_id=env.instance.id,
        phone_number_id=env.pid,
        throughput_mps=mps,
        token=f"tok-{env.pid}",
        store=env.store,
        queue=env.queues.campaigns,
        client=client,
        config=config,
        consumer="instance-test",
    )


async def _route(env: Env, config: EngineConfig) -> None:
    core = CoordinatorCore(env.store, env.queues.campaigns, FakeFleet(), config)
    await core.tick()


async def test_a_replaced_worker_stops_sending_its_batch_at_once(env: Env) -> None:
    config = EngineConfig(
        batch_size=10,
        batch_seconds=10.0,
        epoch_check_interval_s=0.2,
        touch_interval_s=0.2,
        flush_interval_s=0.05,
        recover_interval_s=3600.0,
    )
    _, ids = await env.campaign(10)
    await _route(env, config)  # one batch of 10 on the number's stream
    old = _worker(env, config, mps=2.0)  # slow: 2 a second
    old_run = asyncio.create_task(old.run())
    await wait_for(lambda: _count_at_least(env, 2))
    # The replacement starts (Ray restarted the actor while the old process still runs):
    # it takes the next epoch and reclaims the batch.
    new = _worker(env, config, mps=2.0)
    new_run = asyncio.create_task(new.run())
    await wait_for(lambda: new.epoch is not None)
    sent_at_takeover = sum((await env.accepted()).values())
    await asyncio.wait_for(old_run, 5.0)  # fenced: it stopped by itself
    await asyncio.sleep(2.0)  # at 2/s it would have sent 4 more
    accepted = await env.accepted()
    assert old.fenced
    assert old.stats()["state"] == "fenced"
    assert sum(accepted.values()) <= sent_at_takeover + 1  # at most one already in flight
    assert all(n == 1 for n in accepted.values())
    # The rows the old sender held are in doubt for the new one, which resends none.
    statuses = await env.statuses(ids)
    assert new.in_doubt_found == statuses.count(R.SENDING) >= 10 - sent_at_takeover
    assert new.pipeline.stats.sent == 0
    assert set(statuses) <= {R.SENDING, R.SENT}
    new.stop()
    await asyncio.wait_for(new_run, 10.0)


def _sent_statuses(inbox: Inbox, inbox_pid: str) -> int:
    return sum(
        status["status"] == "sent"
        for payload in inbox.payloads
        for entry in payload["entry"]
        for change in entry["changes"]
        if change["value"].get("metadata", {}).get("phone_number_id") == inbox_pid
        for status in change["value"].get("statuses", [])
    )


async def _count_at_least(env: Env, n: int) -> bool:
    return sum((await env.accepted()).values()) >= n


async def test_a_send_timed_out_after_meta_took_it_is_not_sent_twice(env: Env) -> None:
    config = EngineConfig(
        batch_size=5, flush_interval_s=0.05, in_doubt_min_wait_s=0.0, in_doubt_webhook_margin_s=0.0
    )
    campaign_id, ids = await env.campaign(5)
    await _route(env, config)
    # Meta takes every send, then its answer comes after the client gave up.
    await env.sandbox.faults(accept_timeout_ratio=1.0, timeout_s=3.0)
    worker = _worker(env, config, mps=80.0, timeout_s=0.5)
    run = asyncio.create_task(worker.run())
    await wait_for(lambda: worker.pipeline.stats.in_doubt == 5)
    await wait_for(lambda: not worker.stats()["batches_held"])  # acked: all settled
    await env.sandbox.faults(clear=True)
    assert await env.statuses(ids) == [R.SENDING] * 5  # in doubt, not resent
    assert await env.store.in_doubt.count() >= 5
    # Their status webhooks arrive (matched by our callback data): settled as sent.
    applier = WebhookApplier(env.store, env.queues.webhooks)
    await wait_for(lambda: _sent_statuses(env.inbox, env.pid) >= 5)
    await env.apply_webhooks(applier)
    assert set(await env.statuses(ids)) <= ACCEPTED
    # Even once due, the policy has nothing left to resend.
    core = CoordinatorCore(
        env.store, env.queues.campaigns, FakeFleet(), config, wall_clock=lambda: time.time() + 3600
    )
    await core.resolve_in_doubt([campaign_id])
    assert set(await env.statuses(ids)) <= ACCEPTED
    accepted = await env.accepted()
    assert len(accepted) == 5
    assert all(n == 1 for n in accepted.values()), accepted
    worker.stop()
    await asyncio.wait_for(run, 10.0)
    campaign = await env.store.campaigns.get(campaign_id)
    assert campaign is not None
    assert campaign.total_sent == 5


@pytest.mark.parametrize("policy", list(InDoubtPolicy))
async def test_with_no_webhook_the_policy_settles_in_doubt_sends_after_the_bound(
    env: Env, policy: InDoubtPolicy
) -> None:
    config = EngineConfig(
        batch_size=3,
        flush_interval_s=0.05,
        in_doubt_policy=policy,
        in_doubt_min_wait_s=60.0,
        in_doubt_webhook_margin_s=60.0,
        in_doubt_max_wait_s=600.0,
    )
    campaign_id, ids = await env.campaign(3)
    await _route(env, config)
    # The request hangs and Meta never takes it (then 504): in doubt, and no webhook comes.
    await env.sandbox.faults(timeout_ratio=1.0, timeout_s=2.0)
    worker = _worker(env, config, mps=80.0, timeout_s=0.5)
    run = asyncio.create_task(worker.run())
    await wait_for(lambda: worker.pipeline.stats.in_doubt == 3)
    await wait_for(lambda: not worker.stats()["batches_held"])
    worker.stop()
    await asyncio.wait_for(run, 10.0)
    await env.sandbox.faults(clear=True)

    now = [time.time()]
    watermark: list[float | None] = [None]
    core = CoordinatorCore(
        env.store, env.queues.campaigns, FakeFleet(), config, wall_clock=lambda: now[0]
    )
    core.webhook_watermark = lambda: watermark[0]
    assert await core.resolve_in_doubt([campaign_id]) == 0  # just sent: wait for the webhook
    now[0] += 120.0
    assert await core.resolve_in_doubt([campaign_id]) == 0  # no webhook progress: not yet
    watermark[0] = now[0] - 30.0  # statuses of later sends came, but only 90 s past ours
    assert await core.resolve_in_doubt([campaign_id]) == 3
    expected = R.PENDING if policy is InDoubtPolicy.RESEND else R.FAILED
    assert await env.statuses(ids) == [expected] * 3
    assert await env.accepted() == {}


async def test_two_coordinators_one_active_the_standby_takes_over(env: Env) -> None:
    await env.store.pool.execute("DELETE FROM whatsapp_coordinator_lease")
    config = EngineConfig(
        batch_size=10,
        batch_seconds=0.1,
        queued_batches_per_instance=1,
        coordinator_lease_s=1.0,
        coordinator_lease_renew_s=0.2,
    )
    _, ids = await env.campaign(40)
    first = CoordinatorCore(env.store, env.queues.campaigns, FakeFleet(), config, holder="a")
    second = CoordinatorCore(env.store, env.queues.campaigns, FakeFleet(), config, holder="b")
    await first.tick()
    await second.tick()
    assert (first.active, second.active) == (True, False)
    assert first.routed_batches == 1
    assert second.routed_batches == 0
    assert second.lease_stats()["active"] is False
    # The active one dies (stops renewing); the standby takes over within the lease.
    started = time.monotonic()
    await _drain(env)
    while not second.active:
        await asyncio.sleep(0.1)
        await second.tick()
        assert time.monotonic() - started < 5.0
    took_s = time.monotonic() - started
    assert second.routed_batches == 1
    assert second.lease_stats()["epoch"] == (first.lease_stats()["epoch"] or 0) + 1
    # The old one comes back (it was only paused): it stands by and claims nothing.
    await _drain(env)
    await first.tick()
    assert not first.active
    assert first.routed_batches == 1
    assert took_s < 3.0
    with contextlib.suppress(Exception):
        await env.store.pool.execute("DELETE FROM whatsapp_coordinator_lease")
    assert ids


async def _drain(env: Env) -> None:
    """Empty the number's stream, as its actor would: the coordinator routes when it is low."""
    while jobs := await env.queues.campaigns.read(env.instance.id, "drain", count=50):
        for job in jobs:
            await env.queues.campaigns.ack(env.instance.id, job.job_id)
