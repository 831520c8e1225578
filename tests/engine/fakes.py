"""Small fakes for driving the engine in-process: a fleet, a clock driver, a recording Graph API.

Only what the engine talks to through a seam is faked (the Ray fleet, time, and, for pacing
on a fake clock, the HTTP transport under the real ``MetaClient``); Redis, Postgres and the
sandbox stay real in the tests that use them.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from uuid import UUID

import orjson

from dispatcher.meta.client import MetaClient
from dispatcher.meta.error_codes import Throttle
from dispatcher.store import Store
from dispatcher.store.db import create_database, drop_database
from dispatcher.store.models import Instance
from tests.clock import FakeClock

__all__ = ["FakeClock", "FakeFleet", "GraphAnswer", "RecordingTransport", "own_database"]


@dataclass
class FakeFleet:
    """The ``InstanceFleet`` protocol over plain dicts: the test says what each actor reports."""

    unusable: set[UUID] = field(default_factory=set)
    rates: dict[UUID, float] = field(default_factory=dict)
    errors: dict[UUID, str] = field(default_factory=dict)
    ensured: list[UUID] = field(default_factory=list)
    """Actors started, in order (a number whose actor runs is not started again)."""
    running_ids: set[UUID] = field(default_factory=set)
    busy: set[UUID] = field(default_factory=set)
    """Actors that, asked to stop when idle, answer they are not."""
    idle_stops: list[tuple[UUID, float]] = field(default_factory=list)
    throttled: list[tuple[UUID, Throttle]] = field(default_factory=list)
    halted: list[UUID] = field(default_factory=list)
    restarted: list[UUID] = field(default_factory=list)

    async def ensure(self, instance: Instance) -> None:
        if instance.id not in self.running_ids:
            self.ensured.append(instance.id)
            self.running_ids.add(instance.id)

    def running(self) -> set[UUID]:
        return set(self.running_ids)

    async def stop_idle(self, instance_id: UUID, idle_s: float) -> bool:
        if instance_id not in self.running_ids or instance_id in self.busy:
            return False
        self.running_ids.discard(instance_id)
        self.idle_stops.append((instance_id, idle_s))
        return True

    def usable(self, instance_id: UUID) -> bool:
        return instance_id not in self.unusable

    def rate(self, instance_id: UUID) -> float | None:
        return self.rates.get(instance_id)

    def error_class(self, instance_id: UUID) -> str | None:
        return self.errors.get(instance_id)

    async def throttle(self, instance_id: UUID, throttle: Throttle) -> bool:
        self.throttled.append((instance_id, throttle))
        return True

    async def halt(self, instance: Instance) -> None:
        self.halted.append(instance.id)
        self.unusable.add(instance.id)
        self.running_ids.discard(instance.id)

    async def restart(self, instance: Instance) -> None:
        self.restarted.append(instance.id)
        self.unusable.discard(instance.id)
        self.errors.pop(instance.id, None)


async def run_clock(
    clock: FakeClock,
    until: Callable[[], bool],
    *,
    step_s: float = 0.001,
    timeout_s: float = 20.0,
) -> None:
    """Move ``clock`` by ``step_s`` per real millisecond until ``until()`` holds.

    The engine's own waits are bounded real sleeps (its idle wake-ups); its decisions read
    the fake clock, so what is asserted on the fake clock does not depend on the machine's
    speed. ``timeout_s`` is real time: generous, only there so a stuck test stops.
    """
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        clock.advance(step_s)
        await asyncio.sleep(0.001)


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout_s: float = 20.0,
    poll_s: float = 0.02,
) -> None:
    """Until ``condition()`` (plain or awaitable) holds (real time, generous bound)."""
    deadline = time.monotonic() + timeout_s
    while not await _value(condition()):
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(poll_s)


async def _value(result: bool | Awaitable[bool]) -> bool:
    return await result if inspect.isawaitable(result) else result


@dataclass(frozen=True, slots=True)
class GraphAnswer:
    """One scripted Graph API answer: HTTP status and JSON body."""

    status: int
    body: Mapping[str, object]

    @classmethod
    def error(cls, code: int, status: int = 400, message: str = "scripted") -> GraphAnswer:
        return cls(status, {"error": {"code": code, "message": message, "type": "OAuthException"}})


@dataclass(frozen=True, slots=True)
class Sent:
    at: float
    """Fake-clock time the request left."""
    recipient: str
    status: int


class RecordingTransport:
    """A Graph API on the fake clock: records every send as it leaves, answers from a script
    per recipient (then success). Sits under the real ``MetaClient``, so parsing and error
    classification are the real ones."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.sent: list[Sent] = []
        self.script: dict[str, list[GraphAnswer]] = {}

    def client(self) -> MetaClient:
        return MetaClient("http://graph.invalid", "v23.0", transport=self)

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> tuple[int, bytes]:
        payload = orjson.loads(body or b"{}")
        recipient = str(payload.get("to") or payload.get("recipient"))
        queued = self.script.get(recipient)
        answer = queued.pop(0) if queued else GraphAnswer(200, _accepted(recipient))
        self.sent.append(Sent(self._clock(), recipient, answer.status))
        return answer.status, orjson.dumps(answer.body)

    async def aclose(self) -> None:
        return None

    def accepted(self) -> list[str]:
        return [s.recipient for s in self.sent if s.status == 200]


def _accepted(recipient: str) -> dict[str, object]:
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": recipient, "wa_id": recipient.lstrip("+")}],
        "messages": [{"id": f"wamid.{uuid.uuid4().hex}"}],
    }


def max_in_window(times: list[float], window_s: float = 1.0) -> int:
    """The most sends in any half-open window ``(t - window_s, t]``."""
    ordered = sorted(times)
    worst, start = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window_s:
            start += 1
        worst = max(worst, end - start + 1)
    return worst


@asynccontextmanager
async def own_database(server_url: str, prefix: str) -> AsyncIterator[tuple[str, Store]]:
    """A migrated database of its own on ``server_url`` and a Store over it; dropped after.

    Engine tests drive running campaigns: on the session's shared database a live
    coordinator (the stack's) would route them under the test.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = await create_database(server_url, name)
    store = await Store.open(url, max_size=8)
    try:
        yield url, store
    finally:
        await store.close()
        await drop_database(server_url, name)
