"""The instance actors as the coordinator sees them: started with work, stopped when idle,
polled for their stats (a stopped number keeps its last ones, as ``stopped``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from uuid import UUID

import ray
from ray.exceptions import RayActorError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.instance import RemoteInstanceActor, actor_name
from dispatcher.deployment import Deployment
from dispatcher.engine.number_facts import FactsReader
from dispatcher.meta.error_codes import Throttle
from dispatcher.store.models import Instance

log = logging.getLogger(__name__)

Handle = Any
"""A Ray actor handle (Ray's own generic type does not survive ``.options()``)."""

STATS_TIMEOUT_S = 5.0
UNUSABLE_AFTER_POLLS = 5
"""An actor that has not answered this many polls in a row gets no new work."""
REPLACE_AFTER_POLLS = 15
"""...and after this many it is replaced, on another node if its node is gone."""
UNUSABLE_STATES = {"error", "failed", "fenced", "stopping"}
"""States in which an actor takes no new work ("stopping": an idle stop whose answer was
lost; the next sweep finishes it)."""
STOPPED = "stopped"
"""The state shown for a number without an actor (never started, or stopped when idle)."""
STOP_TIMEOUT_S = 30.0


def stopped_stats(instance: Instance, last: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a number without an actor shows: its last actor's figures, if it had one."""
    return {
        **(last or {}),
        "instance_id": str(instance.id),
        "phone_number_id": instance.phone_number_id,
        "state": STOPPED,
        "configured_rate_mps": (last or {}).get("configured_rate_mps", instance.throughput_mps),
        "pid": None,
        "rss_mb": None,
        "sends_per_s": 0.0,
        "backlog": 0,
        "in_flight": 0,
    }


class RayFleet:
    """One detached, restartable ``InstanceActor`` per number with work, spread over the
    cluster. Starts and stops of one number are serialized (its lock): a start never finds
    the name of an actor still stopping."""

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._handles: dict[UUID, Handle] = {}
        self._names: dict[UUID, str] = {}
        self.stats: dict[UUID, dict[str, Any]] = {}
        self._placed: dict[UUID, str] = {}
        self._instances: dict[UUID, Instance] = {}
        self._silent: dict[UUID, int] = {}
        self._next_node: str | None = None
        self._halted: set[UUID] = set()
        """Stopped by :meth:`halt`: no actor until :meth:`restart`."""
        self._locks: dict[UUID, asyncio.Lock] = {}
        self.facts: FactsReader | None = None
        """Reads facts for numbers without an actor (set once the coordinator is connected)."""

    def _lock(self, instance_id: UUID) -> asyncio.Lock:
        return self._locks.setdefault(instance_id, asyncio.Lock())

    def running(self) -> set[UUID]:
        return set(self._handles)

    async def adopt(self, instances: list[Instance]) -> int:
        """Take over the actors already running for these numbers (they are detached: they
        outlive a coordinator); how many. The idle sweep stops those without work."""
        adopted = 0
        for instance in instances:
            if instance.id in self._handles:
                continue
            try:
                handle = ray.get_actor(
                    actor_name(instance.phone_number_id), namespace=self._deployment.namespace
                )
            except ValueError:
                continue
            self._instances[instance.id] = instance
            self._handles[instance.id] = handle
            self._names[instance.id] = actor_name(instance.phone_number_id)
            adopted += 1
        return adopted

    async def ensure(self, instance: Instance) -> None:
        self._instances[instance.id] = instance
        if instance.id in self._handles or instance.id in self._halted:
            return
        async with self._lock(instance.id):
            if instance.id in self._handles or instance.id in self._halted:
                return
            self._start(instance)

    def _start(self, instance: Instance) -> None:
        name = actor_name(instance.phone_number_id)
        fresh = self.facts is not None and self.facts.fresh(
            instance.id, self._deployment.engine.facts_fresh_s
        )
        handle: Handle = RemoteInstanceActor.options(
            name=name,
            namespace=self._deployment.namespace,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            scheduling_strategy=self._placement(),
        ).remote(self._deployment, str(instance.id), not fresh)
        if not fresh and self.facts is not None:
            self.facts.read_elsewhere(instance.id)
        self._handles[instance.id] = handle
        self._names[instance.id] = name
        self._silent.pop(instance.id, None)
        self.stats[instance.id] = {
            **self.stats.get(instance.id, {}),
            "instance_id": str(instance.id),
            "state": "starting",
        }
        if self._next_node is not None:
            self._placed[instance.id] = self._next_node
            self._next_node = None
        log.info("instance actor %s starting", name)

    async def stop_idle(self, instance_id: UUID, idle_s: float) -> bool:
        """Stop the actor if it has been idle for ``idle_s`` (it decides, as it stops
        reading); True once stopped and its name free. Its last stats stay, as stopped."""
        last = self.stats.get(instance_id, {})
        # An earlier stop whose answer was lost left it stopping: it reads nothing more, so
        # it is finished here (it holds nothing: it stopped only when idle).
        stopping = last.get("state") == "stopping"
        if not stopping and (
            last.get("state") != "running" or float(last.get("idle_for_s", 0.0)) < idle_s
        ):
            # Busy at the last poll, or not answering (the sweep runs in the routing round:
            # it must not wait on a dead actor's timeout).
            return False
        async with self._lock(instance_id):
            handle = self._handles.get(instance_id)
            instance = self._instances.get(instance_id)
            if handle is None or instance is None:
                return False
            if not stopping:
                try:
                    stopped = await asyncio.wait_for(
                        handle.stop_if_idle.remote(idle_s), STOP_TIMEOUT_S
                    )
                except (RayError, TimeoutError) as exc:
                    log.warning("instance %s: idle stop not answered: %s", instance_id, exc)
                    return False
                if not stopped:
                    return False
            self._forget(instance_id)
            with contextlib.suppress(RayError, ValueError):
                ray.kill(handle, no_restart=True)
            await self._name_released(actor_name(instance.phone_number_id))
            self.stats[instance_id] = stopped_stats(instance, self.stats.get(instance_id))
            return True

    def _forget(self, instance_id: UUID) -> None:
        self._handles.pop(instance_id, None)
        self._silent.pop(instance_id, None)
        self._placed.pop(instance_id, None)

    def _placement(self) -> Any:
        """The alive node holding the fewest of our actors. Ray's own SPREAD packs zero-CPU
        actors onto one node, and a soft affinity let them drift there too; a hard one
        cannot follow a dead node, so :meth:`poll` replaces an actor that stays dead."""
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
        if len(nodes) < 2:
            return "DEFAULT"
        load = dict.fromkeys(nodes, 0)
        for node in self._placed.values():
            if node in load:
                load[node] += 1
        node = min(nodes, key=lambda n: (load[n], n))
        self._next_node = node
        return NodeAffinitySchedulingStrategy(node_id=node, soft=False)

    def usable(self, instance_id: UUID) -> bool:
        if instance_id in self._halted:
            return False
        if self._silent.get(instance_id, 0) >= UNUSABLE_AFTER_POLLS:
            return False
        stats = self.stats.get(instance_id)
        return stats is None or stats.get("state") not in UNUSABLE_STATES

    def error_class(self, instance_id: UUID) -> str | None:
        stats = self.stats.get(instance_id)
        value = None if stats is None else stats.get("error_class")
        return value if isinstance(value, str) else None

    def rate(self, instance_id: UUID) -> float | None:
        stats = self.stats.get(instance_id)
        rate = None if stats is None else stats.get("current_rate_mps")
        return float(rate) if isinstance(rate, int | float) and rate > 0 else None

    async def redetect(self, instance_id: UUID) -> float | None:
        """Have the number's facts read again (a webhook announced a change): by its actor,
        which sends at the new rate, or here when it has none (its next actor uses them)."""
        handle = self._handles.get(instance_id)
        if handle is None:
            facts = None if self.facts is None else await self.facts.read(instance_id)
            rate = None if facts is None else facts.throughput_mps
            return None if rate is None else float(rate)
        if self.facts is not None:
            self.facts.read_elsewhere(instance_id)
        try:
            rate = await asyncio.wait_for(handle.redetect.remote(), 30.0)
        except (RayError, TimeoutError) as exc:
            log.warning("instance actor %s could not re-read its facts: %s", instance_id, exc)
            return None
        return None if rate is None else float(rate)

    async def throttle(self, instance_id: UUID, throttle: Throttle) -> bool:
        handle = self._handles.get(instance_id)
        if handle is None:
            return False
        try:
            result: bool = await asyncio.wait_for(
                handle.throttle.remote(throttle.value), STATS_TIMEOUT_S
            )
        except (TimeoutError, RayError) as exc:
            log.warning("instance %s: throttle not delivered: %s", instance_id, exc)
            return False
        return result

    async def halt(self, instance: Instance) -> None:
        """Stop the actor (in-flight sends finish and are written); it stays stopped and
        unusable, and :meth:`ensure` does not bring it back, until :meth:`restart`."""
        self._instances[instance.id] = instance
        self._halted.add(instance.id)
        async with self._lock(instance.id):
            await self._stop_named(instance)
            self.stats[instance.id] = {
                "instance_id": str(instance.id),
                "state": "error",
                "error": instance.status_reason or "stopped",
            }

    async def restart(self, instance: Instance) -> None:
        """Replace the actor (new token, or back from an error or a halt). A number that had
        no running actor gets none: its next work starts one, with the new token."""
        self._halted.discard(instance.id)
        self._instances[instance.id] = instance
        async with self._lock(instance.id):
            was_running = await self._stop_named(instance)
            self.stats.pop(instance.id, None)
            if was_running:
                self._start(instance)
            else:
                self.stats[instance.id] = stopped_stats(instance)

    async def _stop_named(self, instance: Instance) -> bool:
        """Stop the number's actor, ours or one we lost track of; whether ours ran."""
        handle = self._handles.get(instance.id)
        was_running = handle is not None
        self._forget(instance.id)
        if handle is None:
            with contextlib.suppress(ValueError):
                handle = ray.get_actor(
                    actor_name(instance.phone_number_id), namespace=self._deployment.namespace
                )
        if handle is not None:
            await self._stop(handle)
            await self._name_released(actor_name(instance.phone_number_id))
        return was_running

    async def _name_released(self, name: str, timeout_s: float = 30.0) -> None:
        """ray.kill returns before the name is free; get_if_exists would find the dying actor."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            try:
                ray.get_actor(name, namespace=self._deployment.namespace)
            except ValueError:
                return
            await asyncio.sleep(0.1)

    async def poll(self) -> dict[UUID, dict[str, Any]]:
        """Everyone's stats, concurrently; an actor being restarted shows as such."""

        async def one(instance_id: UUID, handle: Handle) -> None:
            try:
                self.stats[instance_id] = await asyncio.wait_for(
                    handle.stats.remote(), STATS_TIMEOUT_S
                )
                self._silent.pop(instance_id, None)
            except (RayActorError, RayError, TimeoutError) as exc:
                silent = self._silent[instance_id] = self._silent.get(instance_id, 0) + 1
                previous = self.stats.get(instance_id, {})
                self.stats[instance_id] = {
                    **previous,
                    "instance_id": str(instance_id),
                    "state": "restarting",
                    "error": type(exc).__name__,
                }
                if silent >= REPLACE_AFTER_POLLS and instance_id in self._instances:
                    await self._replace(instance_id, handle)

        await asyncio.gather(*(one(i, h) for i, h in list(self._handles.items())))
        return self.stats

    async def _replace(self, instance_id: UUID, handle: Handle) -> None:
        async with self._lock(instance_id):
            current = self._handles.get(instance_id)
            if current is None or current is not handle:
                return  # stopped or replaced meanwhile
            log.error("instance actor %s stays dead: replacing it", instance_id)
            self._forget(instance_id)
            with contextlib.suppress(RayError, ValueError):
                ray.kill(current, no_restart=True)
            await self._name_released(self._names[instance_id])
            self._start(self._instances[instance_id])

    async def stop_all(self) -> None:
        handles = list(self._handles.values())
        self._handles.clear()
        await asyncio.gather(*(self._stop(h) for h in handles))

    async def _stop(self, handle: Handle) -> None:
        with contextlib.suppress(RayError, TimeoutError):
            await asyncio.wait_for(handle.stop.remote(), 30.0)
        ray.kill(handle, no_restart=True)

    def handle(self, instance_id: UUID) -> Handle | None:
        return self._handles.get(instance_id)
