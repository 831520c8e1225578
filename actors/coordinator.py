"""``Coordinator``: the named, detached actor that drives every campaign of a deployment.

A thin Ray wrapper around :class:`~dispatcher.engine.coordinator.CoordinatorCore` (routing,
portfolios, completion), :class:`~dispatcher.engine.webhooks.WebhookApplier` (statuses) and
the fleet of instance actors. Restarted by Ray, it rebuilds its state from Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Any
from uuid import UUID, uuid4

import ray

from actors.fleet import RayFleet, stopped_stats
from actors.metrics import CoordinatorMetrics
from dispatcher.alerts.sender import AlertSender
from dispatcher.alerts.watch import AlertWatch
from dispatcher.deployment import COORDINATOR_NAME, Deployment
from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.engine.number_facts import FactsReader
from dispatcher.engine.webhook_handlers import WebhookContext, webhook_handlers
from dispatcher.engine.webhooks import WebhookApplier
from dispatcher.errors import QueueError
from dispatcher.meta.client import MetaClient
from dispatcher.meta.transport import PoolConfig
from dispatcher.queue import Queues
from dispatcher.store import Store

log = logging.getLogger(__name__)


class Coordinator:
    """See the module docstring. Every remote method waits until the connections are open."""

    def __init__(self, deployment: Deployment) -> None:
        logging.basicConfig(
            level=deployment.log_level, format="%(levelname)s %(name)s: %(message)s"
        )
        self._deployment = deployment
        self._ready = asyncio.Event()
        self._failure: str | None = None
        self._store: Store | None = None
        self._queues: Queues | None = None
        self._core: CoordinatorCore | None = None
        self._fleet = RayFleet(deployment)
        self._applier: WebhookApplier | None = None
        self._alerts = AlertSender(deployment.alerts)
        # One active coordinator per database: this one acts only while it holds the lease;
        # another `dispatcher serve` on the same database stands by and takes over.
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
        self._metrics = CoordinatorMetrics(self._holder, deployment.label)
        self._started = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        self._main = asyncio.get_event_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            self._store, self._queues = await self._deployment.open(pool_size=6)
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
            log.exception("coordinator cannot open its connections")
            self._ready.set()
            return
        # Facts of numbers without an actor (registration, webhooks) are read from here.
        engine = self._deployment.engine
        graph = MetaClient(
            self._deployment.graph_url,
            self._deployment.api_version,
            transport_kind=engine.transport,
            pool=PoolConfig(
                max_connections=4,
                connect_timeout_s=engine.pool.connect_timeout_s,
                request_timeout_s=engine.pool.request_timeout_s,
                keepalive_s=engine.pool.keepalive_s,
            ),
        )
        self._fleet.facts = FactsReader(self._store, graph)
        self._core = CoordinatorCore(
            self._store,
            self._queues.campaigns,
            self._fleet,
            self._deployment.engine,
            holder=self._holder,
        )
        self._applier = WebhookApplier(
            self._store,
            self._queues.webhooks,
            handlers=webhook_handlers(WebhookContext(self._store, self._core, self._fleet)),
            on_lag=self._metrics.observe_webhook_lag,
        )
        applier = self._applier
        if self._alerts.enabled:
            self._alerts.start()
            fleet, core = self._fleet, self._core
            self._core.alerts = AlertWatch(
                self._store,
                self._queues.campaigns,
                self._alerts,
                portfolios=core.portfolio_stats,
                instance_stats=lambda: fleet.stats,
            )
            log.info("alerts to %s", ", ".join(self._alerts.config.targets))
        self._core.webhook_watermark = lambda: applier.watermark_s
        self._tasks = [
            asyncio.create_task(
                self._loop(
                    self._metrics.timed(self._tick), self._deployment.engine.route_interval_s
                )
            ),
            asyncio.create_task(
                self._loop(self._complete, self._deployment.engine.completion_check_s)
            ),
            asyncio.create_task(self._loop(self._poll, self._deployment.engine.stats_interval_s)),
            asyncio.create_task(self._apply_webhooks()),
        ]
        self._ready.set()
        log.info("coordinator ready")

    async def _loop(self, step: Any, interval_s: float) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad round must not stop the coordinator
                log.exception("coordinator step %s failed", getattr(step, "__name__", step))
            await asyncio.sleep(interval_s)

    async def _tick(self) -> None:
        if self._core is None or self._store is None:
            raise RuntimeError("coordinator not started")
        was_active = self._core.active
        await self._core.keep_lease()
        # Losing the lease to another zeroes our gauges: the new holder publishes its own.
        lease = self._core.lease
        self._metrics.follow_lease(
            self._core.active,
            None if lease is None else lease.epoch,
            taken_by_other=self._core.lease_taken_by_other(),
        )
        if self._core.active and not was_active:
            # Active now (first start, a restart, or a takeover): take over the actors
            # still running (detached, they outlive a coordinator); the running campaigns'
            # numbers get one as work is routed to them, idle ones are stopped.
            adopted = await self._fleet.adopt(await self._store.instances.all())
            if adopted:
                log.info("coordinator: %d running instance actors taken over", adopted)
        elif was_active and not self._core.active and self._core.lease_taken_by_other():
            # Another coordinator holds the lease: our actors would compete with its own
            # (their epochs fence them anyway). Not when Postgres is merely unreachable: then
            # nobody can take the lease, and stopping the senders would only lose their
            # unwritten results and stall the campaign once Postgres is back.
            await self._fleet.stop_all()
        await self._core.tick()

    async def _complete(self) -> None:
        if self._core is not None and self._core.active:
            await self._core.complete_settled()

    async def _apply_webhooks(self) -> None:
        """Statuses are applied by the active coordinator alone: its watermark is then the
        whole deployment's, which in-doubt sends wait on."""
        if self._applier is None or self._core is None:
            raise RuntimeError("coordinator not started")
        recovered = False
        while True:
            if not self._core.active:
                recovered = False
                await asyncio.sleep(self._deployment.engine.coordinator_lease_renew_s)
                continue
            try:
                if not recovered:
                    await self._applier.recover()
                    recovered = True
                await self._applier.apply_once(block_ms=500)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("applying webhooks failed")
                await asyncio.sleep(self._deployment.engine.retry_after_s)

    async def _poll(self) -> None:
        if self._core is not None and self._core.active:
            await self._fleet.poll()
            if self._store is not None and self._queues is not None:
                await self._metrics.publish(self._core, self._store, self._queues)

    async def _core_ready(self) -> CoordinatorCore:
        await self._ready.wait()
        if self._core is None:
            raise RuntimeError(f"coordinator not running: {self._failure}")
        return self._core

    # -- remote methods -----------------------------------------------------------------

    async def deployment(self) -> Deployment:
        """Where the services are, without their credentials or the keyring (any Ray client
        may call this): a joining driver adds its own (:meth:`Deployment.joined`)."""
        return self._deployment.public()

    async def ping(self) -> dict[str, Any]:
        await self._ready.wait()
        return {"ready": self._core is not None, "error": self._failure}

    async def start_campaign(self, campaign_id: str) -> bool:
        return await (await self._core_ready()).start_campaign(UUID(campaign_id))

    async def pause_campaign(self, campaign_id: str) -> bool:
        return await (await self._core_ready()).pause_campaign(UUID(campaign_id))

    async def resume_campaign(self, campaign_id: str) -> bool:
        return await (await self._core_ready()).resume_campaign(UUID(campaign_id))

    async def cancel_campaign(self, campaign_id: str) -> bool:
        return await (await self._core_ready()).cancel_campaign(UUID(campaign_id))

    async def refresh_instance(self, instance_id: str) -> None:
        """The instance was (re-)registered: its facts are read from the Graph API (no actor
        needed), and a running actor is replaced to take the new token and limits."""
        core = await self._core_ready()
        instance = await core.refresh_instance(UUID(instance_id))
        if instance is not None and core.active:
            if self._fleet.facts is not None:
                await self._fleet.facts.read(instance.id)
                instance = await core.reload_instance(instance.id) or instance
            await self._fleet.restart(instance)

    async def release_portfolio(self, business_id: str) -> list[str]:
        """End a 131064 hold: the portfolio's numbers it stopped are restarted; their ids."""
        core = await self._core_ready()
        back = await core.release_held_numbers(business_id)
        for instance in back:
            await self._fleet.restart(instance)
        return [str(instance.id) for instance in back]

    async def instance_stats(self, instance_id: str | None = None) -> dict[str, Any]:
        """Each number's actor stats; a number without an actor shows ``stopped`` (with its
        last actor's figures, if it had one)."""
        await self._core_ready()
        if self._store is None:
            raise RuntimeError("coordinator not started")
        if instance_id is not None:
            found = self._fleet.stats.get(UUID(instance_id))
            if found:
                return found
            instance = await self._store.instances.get(UUID(instance_id))
            return {} if instance is None else stopped_stats(instance)
        stats = {str(key): value for key, value in self._fleet.stats.items()}
        for instance in await self._store.instances.all():
            stats.setdefault(str(instance.id), stopped_stats(instance))
        return stats

    async def stats(self, instance_id: str | None = None) -> dict[str, Any]:
        """Queues, instances, portfolios and routing, for the API and the driver SDK."""
        core = await self._core_ready()
        if self._queues is None:
            raise RuntimeError("coordinator not started")
        queues = await self._queues.stats(instance_id)
        return {
            "uptime_s": round(time.monotonic() - self._started, 1),
            "queues": {
                name: {
                    "pending": q.pending,
                    "processing": q.processing,
                    "dlq": q.dlq,
                    "instances": {
                        key: {"pending": s.pending, "processing": s.processing, "dlq": s.dlq}
                        for key, s in q.instances.items()
                    },
                }
                for name, q in queues.items()
            },
            "instances": await self.instance_stats(instance_id),
            "actors": {
                "running": len(self._fleet.running()),
                "stopped_idle": core.idle.stopped,
                "started_for_waiting_work": core.idle.started,
                "idle_stop_s": core.config.instance_idle_stop_s,
            },
            "portfolios": core.portfolio_stats(),
            "routed_batches": core.routed_batches,
            "routed_recipients": core.routed_recipients,
            "deferred_recipients": core.deferred_recipients,
            "coordinator_ticks": core.ticks,
            "webhook_statuses_applied": self._applier.applied if self._applier else 0,
            "lease": core.lease_stats(),
            "in_doubt": {
                "now": await self._store.in_doubt.count() if self._store else None,
                "resolved_by_policy": core.in_doubt_resolved,
                "policy": core.config.in_doubt_policy.value,
                "webhook_watermark_s": self._applier.watermark_s if self._applier else None,
            },
        }

    async def queue_action(self, action: str, queue: str, job_id: str | None = None) -> Any:
        """``retry_dlq``, ``clear`` or ``recover_stuck`` on the campaigns or webhooks queue."""
        core = await self._core_ready()
        if self._queues is None:
            raise RuntimeError("coordinator not started")
        if action == "retry_dlq":
            if queue == "campaigns":
                return await core.retry_dead_letters(job_id)
            return {"retried": await self._queues.retry_dlq(queue, job_id)}
        if action == "clear":
            if queue == "campaigns":
                return await core.clear_queue()
            return {"cleared": await self._queues.clear(queue)}
        if action == "recover_stuck":
            if queue == "campaigns":
                return await core.recover()
            reclaimed = await self._queues.recover_stuck(queue, min_idle_ms=0)
            return {"requeued_batches": len(reclaimed.requeued), "dead": len(reclaimed.dead)}
        raise QueueError(queue, f"unknown action {action!r}")

    async def shutdown(self) -> None:
        """Stop the instance actors (their in-flight sends finish) and the loops; let the
        lease go, so a standby takes over at once."""
        await self._fleet.stop_all()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._core is not None and self._core.lease is not None:
            with contextlib.suppress(Exception):
                await self._core.lease.release()
        self._metrics.stand_down()
        if self._core is not None and self._core.alerts is not None:
            await self._core.alerts.aclose()
        await self._alerts.aclose()
        if self._fleet.facts is not None:
            await self._fleet.facts.aclose()
        if self._queues is not None:
            await self._queues.client.aclose()
        if self._store is not None:
            await self._store.close()


RemoteCoordinator = ray.remote(max_restarts=-1, max_task_retries=3)(Coordinator)


def coordinator_handle(deployment: Deployment) -> Any:
    """The deployment's coordinator: the running one, or a new one (named, detached)."""
    return RemoteCoordinator.options(
        name=COORDINATOR_NAME,
        namespace=deployment.namespace,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
    ).remote(deployment)
