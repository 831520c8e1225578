"""The instance actors as the coordinator sees them: get-or-create by name, poll their stats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from uuid import UUID

import ray
from ray.exceptions import RayActorError, RayError

from actors.instance import RemoteInstanceActor, actor_name
from dispatcher.deployment import Deployment
from dispatcher.store.models import Instance

log = logging.getLogger(__name__)

Handle = Any
"""A Ray actor handle (Ray's own generic type does not survive ``.options()``)."""

STATS_TIMEOUT_S = 5.0
UNUSABLE_STATES = {"error", "failed"}


class RayFleet:
    """One detached, restartable ``InstanceActor`` per number, spread over the cluster."""

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._handles: dict[UUID, Handle] = {}
        self._names: dict[UUID, str] = {}
        self.stats: dict[UUID, dict[str, Any]] = {}

    async def ensure(self, instance: Instance) -> None:
        if instance.id in self._handles:
            return
        name = actor_name(instance.phone_number_id)
        handle: Handle = RemoteInstanceActor.options(
            name=name,
            namespace=self._deployment.namespace,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            scheduling_strategy="SPREAD",
        ).remote(self._deployment, str(instance.id))
        self._handles[instance.id] = handle
        self._names[instance.id] = name
        log.info("instance actor %s ready", name)

    def usable(self, instance_id: UUID) -> bool:
        stats = self.stats.get(instance_id)
        return stats is None or stats.get("state") not in UNUSABLE_STATES

    def rate(self, instance_id: UUID) -> float | None:
        stats = self.stats.get(instance_id)
        rate = None if stats is None else stats.get("current_rate_mps")
        return float(rate) if isinstance(rate, int | float) and rate > 0 else None

    async def restart(self, instance: Instance) -> None:
        """Replace the actor (new token, or back from an error)."""
        handle = self._handles.pop(instance.id, None)
        self.stats.pop(instance.id, None)
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
            except (RayActorError, RayError, TimeoutError) as exc:
                previous = self.stats.get(instance_id, {})
                self.stats[instance_id] = {
                    **previous,
                    "instance_id": str(instance_id),
                    "state": "restarting",
                    "error": type(exc).__name__,
                }

        await asyncio.gather(*(one(i, h) for i, h in self._handles.items()))
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
