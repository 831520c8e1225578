"""Run scenarios one after another, each bounded in time, each cleaning up what it started."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from dispatcher.sandbox.server import free_port
from tests.chaos.campaign import CampaignRun
from tests.chaos.report import Row
from tests.chaos.scenarios import Scenario, profile
from tests.chaos.world import OwnServers

log = logging.getLogger(__name__)

SETUP_S = 200.0
"""Databases, the sandbox, one serve (Ray) ready, the campaign created: at most this long."""
VERDICT_S = 60.0
SETTLE_S = 5.0


async def run_scenario(root: Path, servers: OwnServers, scenario: Scenario) -> Row:
    run = CampaignRun(root, servers, scenario.name, list(scenario.numbers), scenario.size)
    try:
        return await _run_scenario(run, scenario)
    finally:
        run.end_processes()  # whatever happened, cancellation (Ctrl-C) included


async def _run_scenario(run: CampaignRun, scenario: Scenario) -> Row:
    notes: list[str] = []
    error: str | None = None
    completed: float | None = None
    injector: asyncio.Task[list[str]] | None = None
    bound = asyncio.timeout(SETUP_S * scenario.serves + scenario.bound_s + 30)
    try:
        async with bound:
            ray_address = None
            if scenario.cluster:
                run.cluster = start_cluster(run.root)
                ray_address = run.cluster.address
            second_port = free_port() if scenario.serves > 1 else None
            await run.prepare(ray_address, webhook_port=second_port)
            if second_port is not None:
                # The second serve takes Meta's webhooks: it is the one that survives.
                await run.start_serve(second_port)
            await run.create()
            if scenario.sandbox_faults:
                assert run.control is not None
                await run.control.faults(**scenario.sandbox_faults)
            await run.send()
            injector = asyncio.create_task(scenario.inject(run, scenario))
            completed, status = await run.wait_completed(scenario.bound_s)
            notes.append(f"campaign at the end: {status}")
            if not injector.done():
                # A fault still under way (a stopped process not yet resumed) ends first: what
                # the process does once it runs again is part of the verdict.
                notes.append("the campaign completed while the fault was still under way")
            notes[:0] = await injector
            await asyncio.sleep(SETTLE_S)  # a straggler's late send still reaches the audit
    except TimeoutError as exc:
        error = "the scenario's hard time bound ran out" if bound.expired() else f"timeout: {exc}"
    except Exception as exc:
        log.exception("scenario %s broke", scenario.name)
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if injector is not None and not injector.done():
            injector.cancel()
    try:
        async with asyncio.timeout(VERDICT_S):
            row = await run.verdict(scenario.fault, completed, notes, error)
    except Exception as exc:
        row = Row(scenario.fault, scenario.size, 0, 0, 0, 0, None, tuple(notes), f"no audit: {exc}")
    finally:
        await run.close()
    if not row.passed:
        row = _with_logs(row, run)
    return row


def _with_logs(row: Row, run: CampaignRun) -> Row:
    from dataclasses import replace

    return replace(row, notes=(*row.notes, f"serve logs: {', '.join(run.logs())}"))


def start_cluster(root: Path) -> Any:
    """A head and two worker nodes on this machine, in a Ray temp dir of ours."""
    from ray.cluster_utils import Cluster

    os.environ["RAY_TMPDIR"] = str(root / "ray-cluster")
    (root / "ray-cluster").mkdir(exist_ok=True)
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    return cluster


async def run_profile(
    name: str, only: list[str] | None = None, keep: bool = False, on_row: Any = None
) -> list[Row]:
    """Every scenario of the profile on servers of this run's own; the rows in order."""
    scenarios = profile(name, only)
    root = Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp"))
    servers = OwnServers(root)
    rows: list[Row] = []
    try:
        await asyncio.to_thread(servers.start)
        for scenario in scenarios:
            began = time.monotonic()
            row = await run_scenario(root, servers, scenario)
            rows.append(row)
            if on_row is not None:
                on_row(row, time.monotonic() - began)
    finally:
        servers.stop()  # not in a thread: this must run even when the run is cancelled
        if keep:
            log.warning("chaos run kept in %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return rows
