"""``InstanceActor``: one WhatsApp number, its pacing and its connection pool, in one process.

A thin Ray wrapper around :class:`~dispatcher.engine.instance.InstanceWorker`: it opens the
connections, starts the worker, publishes Ray metrics and a health line. Named after the
number, so the dashboard shows which number an actor serves; restarted by Ray when it dies,
it resumes from its stream and Postgres. Started by the coordinator when its number gets work,
and stopped by it once idle (``EngineConfig.instance_idle_stop_s``): a number without work
costs no process. Each start is a new incarnation with a new epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any
from uuid import UUID

import psutil
import ray
from ray.util.metrics import Counter, Gauge

from dispatcher.deployment import Deployment
from dispatcher.engine.instance import InstanceWorker
from dispatcher.engine.number_facts import keep_reading, read_number_facts
from dispatcher.meta.client import MetaClient
from dispatcher.meta.error_codes import Throttle
from dispatcher.meta.transport import PoolConfig
from dispatcher.queue import Queues
from dispatcher.store import Store
from dispatcher.store.models import Instance

log = logging.getLogger(__name__)

COUNTERS = (
    ("sent", "messages Meta accepted"),
    ("failed", "messages failed for good"),
    ("retried", "send attempts retried"),
    ("dead_lettered", "messages whose retries ran out"),
)
"""Each instance actor's counters, exported as ``dispatcher_<name>_total{instance}``."""
GAUGES = (
    ("current_rate_mps", "send rate now (after throttle cuts)"),
    ("configured_rate_mps", "the number's throughput limit"),
    ("sends_per_s", "sends per second, last 5 s"),
    ("backlog", "messages waiting, delayed or in flight"),
    ("breaker_state", "0 closed, 1 half-open, 2 open"),
    ("bucket_tokens", "token bucket level"),
)
"""Each instance actor's gauges, exported as ``dispatcher_<name>{instance}``."""
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


def actor_name(phone_number_id: str) -> str:
    return f"instance-{phone_number_id}"


class InstanceActor:
    """Sends one number's messages; see the module docstring."""

    def __init__(self, deployment: Deployment, instance_id: str, read_facts: bool = True) -> None:
        logging.basicConfig(
            level=deployment.log_level, format="%(levelname)s %(name)s: %(message)s"
        )
        self._deployment = deployment
        self._instance_id = UUID(instance_id)
        self._read_facts = read_facts
        """False: the coordinator read the number's facts lately; send at the recorded rate."""
        self._worker: InstanceWorker | None = None
        self._store: Store | None = None
        self._queues: Queues | None = None
        self._client: MetaClient | None = None
        self._failure: str | None = None
        self._started = time.monotonic()
        self._reported: dict[str, float] = {}
        self._metrics_ready = False
        self._reread: asyncio.Task[None] | None = None
        self._main = asyncio.get_event_loop().create_task(self._run())

    async def _run(self) -> None:
        delay = 1.0
        while self._worker is None:
            try:
                await self._open()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Postgres or Redis not there yet: try again, slower
                self._failure = f"{type(exc).__name__}: {exc}"
                log.exception("instance actor %s cannot start; retrying", self._instance_id)
                await self._close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self._failure = None
        extras = [
            asyncio.create_task(self._metrics_loop()),
            asyncio.create_task(self._health_loop()),
        ]
        try:
            await self._worker.run()
        except Exception:
            # A worker that died of a surprise leaves its batches on the queue: let Ray
            # restart this process, which resumes from the queue and Postgres.
            log.exception("instance actor %s: worker died; restarting", self._instance_id)
            os._exit(1)
        finally:
            for task in extras:
                task.cancel()

    async def _open(self) -> None:
        engine = self._deployment.engine
        self._store, self._queues = await self._deployment.open(pool_size=3)
        instance = await self._store.instances.get(self._instance_id)
        token = await self._store.instances.instance_token(self._instance_id)
        if instance is None or token is None:
            raise LookupError(f"instance {self._instance_id} is not registered")
        pool = PoolConfig(
            max_connections=engine.max_in_flight,
            connect_timeout_s=engine.pool.connect_timeout_s,
            request_timeout_s=engine.pool.request_timeout_s,
            keepalive_s=engine.pool.keepalive_s,
        )
        self._client = MetaClient(
            self._deployment.graph_url,
            self._deployment.api_version,
            transport_kind=engine.transport,
            pool=pool,
        )
        if self._read_facts:
            throughput = await self._detect(instance, token)
        else:
            throughput = float(instance.throughput_mps or 80)
        self._worker = InstanceWorker(
            instance_id=instance.id,
            phone_number_id=instance.phone_number_id,
            throughput_mps=throughput,
            token=token,
            store=self._store,
            queue=self._queues.campaigns,
            client=self._client,
            config=engine,
        )
        self._tags = {"instance": instance.phone_number_id, "deployment": self._deployment.label}
        log.info(
            "instance %s (%s) sending at up to %.0f msg/s",
            instance.phone_number_id,
            instance.name or instance.id,
            throughput,
        )

    async def _detect(self, instance: Instance, token: str) -> float:
        """The number's facts from the Graph API (see :mod:`dispatcher.engine.number_facts`)."""
        if self._client is None or self._store is None:
            raise RuntimeError("instance actor not started")
        facts = await read_number_facts(self._client, self._store, instance, token)
        if facts.outage and (self._reread is None or self._reread.done()):
            # Sending goes on at the throughput on record; the read is retried aside.
            self._reread = asyncio.create_task(self._read_later(instance, token))
        return float(facts.throughput_mps or 80)

    async def _read_later(self, instance: Instance, token: str) -> None:
        """Read the number's facts once the Graph API is back (after a start-up outage)."""
        if self._client is None or self._store is None:
            raise RuntimeError("instance actor not started")
        facts = await keep_reading(self._client, self._store, instance, token)
        if self._worker is not None and facts.throughput_mps:
            self._worker.pacer.set_limit(float(facts.throughput_mps))

    # -- remote methods -----------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        if self._main.done() and not self._main.cancelled():
            error = self._main.exception()
            if error is not None:  # the worker died: no work must be routed here
                return {
                    "instance_id": str(self._instance_id),
                    "state": "failed",
                    "error": f"{type(error).__name__}: {error}",
                }
        if self._worker is None:
            return {
                "instance_id": str(self._instance_id),
                "state": "failed" if self._failure else "starting",
                "error": self._failure,
            }
        stats = self._worker.stats()
        stats["pid"] = os.getpid()
        stats["node_id"] = ray.get_runtime_context().get_node_id()
        stats["rss_mb"] = round(psutil.Process().memory_info().rss / 2**20, 1)
        return stats

    async def stop(self) -> None:
        """Finish in-flight sends, write their results, and stop."""
        if self._worker is not None:
            self._worker.stop()
        else:  # still opening its connections: nothing in flight to finish
            self._main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._main
        await self._close()

    async def stop_if_idle(self, idle_s: float) -> bool:
        """Stop if the worker has had no work for ``idle_s`` (see
        :meth:`InstanceWorker.stop_if_idle`); True once stopped and closed: the caller may
        kill this process. A worker still starting, or halted, or busy, goes on."""
        if self._worker is None or not await self._worker.stop_if_idle(idle_s):
            return False
        with contextlib.suppress(asyncio.CancelledError):
            await self._main
        await self._close()
        return True

    async def redetect(self) -> float | None:
        """Read the number's facts again (a webhook announced a change: a throughput
        upgrade, say) and send at the throughput found; the new rate, None if not running."""
        if self._worker is None or self._store is None:
            return None
        instance = await self._store.instances.get(self._instance_id)
        token = await self._store.instances.instance_token(self._instance_id)
        if instance is None or token is None:
            return None
        throughput = await self._detect(instance, token)
        self._worker.pacer.set_limit(throughput)
        # The webhook that asks for this re-read (THROUGHPUT_UPGRADE) says the number is back
        # on the platform: a 131057 pause need not run its full length.
        self._worker.pipeline.end_pause()
        log.info("instance %s now sends at up to %.0f msg/s", instance.phone_number_id, throughput)
        return throughput

    async def throttle(self, throttle: str) -> bool:
        """Cut this number's rate as a send's throttle error would (a webhook said so)."""
        if self._worker is None:
            return False
        self._worker.pacer.throttled(Throttle(throttle))
        return True

    async def ping(self) -> str:
        return "pong"

    async def _close(self) -> None:
        if self._reread is not None:
            self._reread.cancel()
            self._reread = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._queues is not None:
            await self._queues.client.aclose()
            self._queues = None
        if self._store is not None:
            await self._store.close()
            self._store = None

    # -- observability ------------------------------------------------------------------

    async def _metrics_loop(self) -> None:
        tag = ("instance", "deployment")
        counters = {
            name: Counter(f"dispatcher_{name}_total", description=desc, tag_keys=tag)
            for name, desc in COUNTERS
        }
        gauges = {
            name: Gauge(f"dispatcher_{name}", description=desc, tag_keys=tag)
            for name, desc in GAUGES
        }
        while True:
            await asyncio.sleep(self._deployment.engine.stats_interval_s)
            stats = await self.stats()
            if "sent" not in stats:
                continue
            for name, counter in counters.items():
                delta = stats[name] - self._reported.get(name, 0)
                if delta > 0:
                    counter.inc(delta, tags=self._tags)
                self._reported[name] = stats[name]
            stats["breaker_state"] = BREAKER_STATES.get(stats["breaker"]["state"], 0)
            for name, gauge in gauges.items():
                gauge.set(float(stats[name]), tags=self._tags)

    async def _health_loop(self) -> None:
        """The seed's health line: uptime, queue pending / processing / DLQ, memory."""
        if self._queues is None:
            raise RuntimeError("instance actor not started")
        while True:
            await asyncio.sleep(self._deployment.engine.health_interval_s)
            queue = await self._queues.campaigns.stats(self._instance_id)
            stats = await self.stats()
            log.info(
                "Health [%s] instance %s: queue %d pending, %d processing, %d DLQ; "
                "sent %s, %s msg/s (limit %s); memory %s MB",
                _uptime(time.monotonic() - self._started),
                stats.get("phone_number_id"),
                queue.pending,
                queue.processing,
                queue.dlq,
                stats.get("sent"),
                stats.get("sends_per_s"),
                stats.get("configured_rate_mps"),
                stats.get("rss_mb"),
            )


def _uptime(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m {secs}s"


RemoteInstanceActor = ray.remote(max_restarts=-1, max_task_retries=3)(InstanceActor)
