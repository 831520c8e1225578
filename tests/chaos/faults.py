"""The faults, each injected on real processes while a campaign runs.

Each takes the running :class:`CampaignRun` and its :class:`Scenario` and returns notes for
the report (what was done, when, and what the system showed). A fault only ever signals a
process it has checked belongs to this run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psutil

from actors.fleet import REPLACE_AFTER_POLLS, STATS_TIMEOUT_S
from dispatcher.engine.config import EngineConfig
from tests.chaos.campaign import CampaignRun

if TYPE_CHECKING:
    from tests.chaos.scenarios import Scenario

START_SHARE = 0.25
"""Faults hit once about this share of the campaign is sent: mid-flight, work on every side."""
OUTAGE_S = 5.0
REPLACE_AFTER_S = REPLACE_AFTER_POLLS * (EngineConfig().stats_interval_s + STATS_TIMEOUT_S)
"""How long the coordinator waits before it replaces a silent actor: each poll of a stopped
actor lasts its timeout, then the stats interval passes (actors/fleet.py)."""


async def actor_pid(run: CampaignRun, phone: str, not_pid: int | None, timeout_s: float) -> int:
    """The pid of the actor serving ``phone`` once it runs in a process other than ``not_pid``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = await run.instance_stats(phone)
        pid = stats.get("pid")
        if isinstance(pid, int) and pid != not_pid and stats.get("state") != "restarting":
            return pid
        await asyncio.sleep(0.3)
    raise TimeoutError(f"no live actor process for {phone} in {timeout_s}s")


async def _finished(run: CampaignRun) -> bool:
    found = await run.campaign()
    return found is not None and found["status"] == "completed"


def _own(run: CampaignRun, pid: int) -> None:
    assert run.active is not None
    if not run.active.owns(pid):
        raise RuntimeError(f"pid {pid} is not one of this run's processes: not signalled")


async def kill_instance_actors(run: CampaignRun, scenario: Scenario) -> list[str]:
    """SIGKILL the instance actors' processes in turn, ``scenario.kills`` times."""
    await run.sent_at_least(0.05, 90)
    phones = [n.phone_number_id for n in run.numbers]
    last: dict[str, int] = {}
    killed: list[str] = []
    turn = 0
    while len(killed) < scenario.kills and not await _finished(run):
        phone = phones[turn % len(phones)]
        turn += 1
        pid = await actor_pid(run, phone, last.get(phone), 60)
        _own(run, pid)
        sent = await run.sent_at_least(0, 5)
        run.mark(f"SIGKILL {phone}")
        os.kill(pid, signal.SIGKILL)
        last[phone] = pid
        killed.append(f"{phone}@{sent}")
        await asyncio.sleep(scenario.every_s)
    return [f"{len(killed)} actor processes SIGKILLed (number@sent): {', '.join(killed)}"]


async def stop_an_instance_actor(run: CampaignRun, scenario: Scenario) -> list[str]:
    """SIGSTOP one actor's process past the replacement timeout, then SIGCONT it."""
    await run.sent_at_least(START_SHARE, 90)
    phone = run.numbers[0].phone_number_id
    pid = await actor_pid(run, phone, None, 60)
    _own(run, pid)
    created = psutil.Process(pid).create_time()
    stop_s = REPLACE_AFTER_S + 15
    run.mark(f"SIGSTOP {phone}")
    os.kill(pid, signal.SIGSTOP)
    began = time.monotonic()
    replaced_by: Any = None
    try:
        while time.monotonic() - began < stop_s:
            await asyncio.sleep(5)
            stats = await run.instance_stats(phone)
            if stats.get("pid") not in (None, pid):
                replaced_by = stats.get("pid")
    finally:
        run.mark(f"SIGCONT {phone}")
        resumed = _signal_if_same(pid, created, signal.SIGCONT)
    return [
        f"SIGSTOP {phone} actor pid {pid} for {stop_s:.0f}s "
        f"(replacement after ~{REPLACE_AFTER_S:.0f}s); replaced by pid {replaced_by}; "
        + ("old process resumed by SIGCONT" if resumed else "old process gone before SIGCONT")
    ]


def _signal_if_same(pid: int, created: float, sig: int) -> bool:
    with contextlib.suppress(psutil.NoSuchProcess):
        proc = psutil.Process(pid)
        if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
            proc.send_signal(sig)
            return True
    return False


async def kill_serve(run: CampaignRun, scenario: Scenario) -> list[str]:
    """SIGKILL ``dispatcher serve`` and every process of its Ray, then start it again."""
    sent = await run.sent_at_least(START_SHARE, 90)
    old = run.active
    assert old is not None
    run.mark("kill serve")
    count = await asyncio.to_thread(old.kill)
    await asyncio.sleep(2)
    began = time.monotonic()
    run.active = await run.start_serve(old.port)
    run.mark("serve back")
    return [
        f"killed serve and {count} processes of its Ray at sent={sent}; "
        f"a new serve was ready in {time.monotonic() - began:.1f}s"
    ]


async def _outage(run: CampaignRun, what: str, restart: Callable[[float], None]) -> list[str]:
    sent = await run.sent_at_least(START_SHARE, 90)
    run.mark(f"{what} down")
    await asyncio.to_thread(restart, OUTAGE_S)
    run.mark(f"{what} up")
    return [f"{what} stopped for {OUTAGE_S:.0f}s at sent={sent}, then started"]


async def restart_postgres(run: CampaignRun, scenario: Scenario) -> list[str]:
    return await _outage(run, "postgres", run.servers.restart_postgres)


async def restart_redis(run: CampaignRun, scenario: Scenario) -> list[str]:
    return await _outage(run, "redis (AOF kept)", run.servers.restart_redis)


async def flush_redis(run: CampaignRun, scenario: Scenario) -> list[str]:
    sent = await run.sent_at_least(START_SHARE, 90)
    run.mark("FLUSHALL")
    await asyncio.to_thread(run.servers.flush_redis)
    return [f"FLUSHALL on our own valkey at sent={sent}"]


async def remove_a_node(run: CampaignRun, scenario: Scenario) -> list[str]:
    """Remove the worker node of the cluster that holds an instance actor."""
    cluster = run.cluster
    assert cluster is not None
    sent = await run.sent_at_least(START_SHARE, 90)
    placement = {}
    for number in run.numbers:
        stats = await run.instance_stats(number.phone_number_id)
        placement[number.phone_number_id] = stats.get("node_id")
    for node in list(cluster.worker_nodes):
        phones = [phone for phone, node_id in placement.items() if node_id == node.node_id]
        if phones:
            run.mark("remove node")
            await asyncio.to_thread(cluster.remove_node, node, False)
            return [f"removed worker node {node.node_id[:8]} (numbers {phones}) at sent={sent}"]
    raise RuntimeError(f"no worker node holds an instance actor: {placement}")


async def no_fault(run: CampaignRun, scenario: Scenario) -> list[str]:
    """The control row: the same campaign with nothing broken."""
    return ["no fault injected"]


async def sandbox_faults_only(run: CampaignRun, scenario: Scenario) -> list[str]:
    return [f"sandbox faults from the start: {scenario.sandbox_faults}"]


async def kill_the_active_serve(run: CampaignRun, scenario: Scenario) -> list[str]:
    """Two serves on one database: kill the one whose actors send (the active one)."""
    sent = await run.sent_at_least(START_SHARE, 90)
    by_serve = {}
    for serve in run.serves:
        total = 0
        for number in run.numbers:
            stats = await run.instance_stats(number.phone_number_id, serve)
            total += int(stats.get("sent") or 0)
        by_serve[serve.label] = total
    active = max(run.serves, key=lambda s: by_serve[s.label])
    run.mark(f"kill {active.label}")
    count = await asyncio.to_thread(active.kill)
    run.active = next(s for s in run.serves if s is not active)
    return [
        f"actor sends per serve {by_serve}; killed {active.label} "
        f"({count} processes) at sent={sent}"
    ]
