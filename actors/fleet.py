"""The instance actors as the coordinator sees them: get-or-create by name, poll their stats."""

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
UNUSABLE_STATES = {"error", "failed", "fenced"}


class RayFleet:
    """One detached, restartable ``InstanceActor`` per number, spread over the cluster."""

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

    async def ensure(self, instance: Instance) -> None:
        self._instances[instance.id] = instance
        if instance.id in self._handles or instance.id in self._halted:
            return
        name = actor_name(instance.phone_number_id)
        handle: Handle = RemoteInstanceActor.options(
            name=name,
            namespace=self._deployment.namespace,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            scheduling_strategy=self._placement(),
        ).remote(self._deployment, str(instance.id))
        self._handles[instance.id] = handle
        self._names[instance.id] = name
        if self._next_node is not None:
            self._placed[instance.id] = self._next_node
            self._next_node = None
        log.info("instance actor %s ready", name)

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
        """Ask the number's actor to read its facts again (a webhook announced a change)."""
        handle = self._handles.get(instance_id)
        if handle is None:
            return None
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
        handle = self._handles.pop(instance.id, None)
        if handle is None:
            with contextlib.suppress(ValueError):
                handle = ray.get_actor(
                    actor_name(instance.phone_number_id), namespace=self._deployment.namespace
                )
        self._silent.pop(instance.id, None)
        self.stats[instance.id] = {
            "instance_id": str(instance.id),
            "state": "error",
            "error": instance.status_reason or "stopped",
        }
        if handle is not None:
            await self._stop(handle)
            await self._name_released(actor_name(instance.phone_number_id))

    async def restart(self, instance: Instance) -> None:
        """Replace the actor (new token, or back from an error or a halt)."""
        self._halted.discard(instance.id)
        handle = self._handles.pop(instance.id, None)
        self.stats.pop(instance.id, None)
        self._placed.pop(instance.id, None)
        if handle is None:
            with contextlib.suppress(ValueError):
                handle = ray.get_actor(
                    actor_name(instance.phone_number_id), namespace=self._deployment.namespace
                )
        if handle is not None:
            await self._stop(handle)
            await self._name_released(actor_name(instance.phone_number_id))
        await self.ensure(instance)

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
                    log.error("instance actor %s stays dead: replacing it", instance_id)
                    self._silent.pop(instance_id, None)
                    self._placed.pop(instance_id, None)
                    self._handles.pop(instance_id, None)
                    with contextlib.suppress(RayError, ValueError):
                        ray.kill(handle, no_restart=True)
                    await self._name_released(self._names[instance_id])
                    await self.ensure(self._instances[instance_id])

        await asyncio.gather(*(one(i, h) for i, h in list(self._handles.items())))
        return self.stats

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
