"""Benchmark: whole campaigns against the sandbox on local Ray, send to ``completed``.

Each campaign runs over numbers of given throughputs; its ideal time is what Meta allows:
recipients / the sum of the numbers' limits. Reported: the actual time from ``send`` to the
campaign's ``completed`` (its ``finished_at``), the ratio ideal / actual (goal: >= 0.95), the
time from ``send`` to the first message Meta received, and from the last one to ``completed``
(goal: each under 0.5 s). A small warm-up campaign runs first on the same numbers, so their
actors are running: actor start-up (a Ray worker, the one-second wait for a predecessor's
window) is the fleet's cost (bench section ``fleet``), not a campaign's latency.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import httpx
from rich.console import Console
from rich.table import Table

from dispatcher.bench.actors import TEMPLATE
from dispatcher.bench.local import local_dispatcher
from dispatcher.meta.tiers import MessagingTier
from dispatcher.sandbox.config import NumberConfig, PortfolioConfig, SandboxConfig, WebhookConfig
from dispatcher.sdk import Dispatcher


@dataclass(frozen=True, slots=True)
class Scenario:
    recipients: int
    limits_mps: tuple[int, ...]
    """One number per limit."""

    def numbers(self, index: int) -> list[tuple[str, int]]:
        return [(f"81{index:02d}{n}", mps) for n, mps in enumerate(self.limits_mps)]

    @property
    def ideal_s(self) -> float:
        return self.recipients / sum(self.limits_mps)


SCENARIOS = [Scenario(800, (80,)), Scenario(6_000, (80, 200))]
WARM_UP_PER_NUMBER = 20


@dataclass(frozen=True, slots=True)
class Measured:
    actual_s: float
    first_message_s: float
    completion_s: float
    throttled: int
    """130429 answers Meta gave the campaign's numbers (each cuts the number's rate)."""


def _sandbox_config() -> SandboxConfig:
    return SandboxConfig(
        numbers=[
            NumberConfig(
                phone_number_id=pid, token=f"bench-{pid}", business_id="bench", throughput_mps=mps
            )
            for index, scenario in enumerate(SCENARIOS)
            for pid, mps in scenario.numbers(index)
        ],
        portfolios=[
            PortfolioConfig(business_id="bench", messaging_tier=MessagingTier.TIER_UNLIMITED)
        ],
        webhook=WebhookConfig(url=None),
        max_records=200_000,
    )


def _run_one(dispatcher: Dispatcher, sandbox_url: str, index: int, scenario: Scenario) -> Measured:
    numbers = scenario.numbers(index)
    instances = [
        dispatcher.register_instance(pid, f"bench-{pid}", "bench", throughput_mps=mps)
        for pid, mps in numbers
    ]
    ids = [i.id for i in instances]
    # A few messages first: the numbers' actors start with work (and wait out one pacing
    # window); the measured campaign then finds them running.
    warm_up = dispatcher.create_campaign(
        f"bench warm-up {index}",
        TEMPLATE,
        ids,
        ({"phone": f"+55829{index:01d}{i:07d}"} for i in range(WARM_UP_PER_NUMBER * len(ids))),
    )
    dispatcher.send(warm_up.id)
    dispatcher.wait(warm_up.id, progress=False, timeout_s=120, poll_s=0.2)
    campaign = dispatcher.create_campaign(
        f"bench campaign {index}",
        TEMPLATE,
        ids,
        ({"phone": f"+55819{index:01d}{i:07d}"} for i in range(scenario.recipients)),
    )
    wall_minus_monotonic = time.time() - time.monotonic()
    sent_at = time.monotonic()
    dispatcher.send(campaign.id)
    done = dispatcher.wait(
        campaign.id, progress=False, timeout_s=scenario.ideal_s * 3 + 60, poll_s=1.0
    )
    if done.finished_at is None:
        raise RuntimeError(f"campaign {campaign.id} ended {done.status} without finishing")
    completed_at = done.finished_at.timestamp() - wall_minus_monotonic
    pids = {pid for pid, _ in numbers}
    records = httpx.get(
        f"{sandbox_url}/_sandbox/requests", params={"limit": 200_000}, timeout=60
    ).json()
    # The sandbox stamps requests with the machine's monotonic clock, as this process does.
    # The warm-up's sends were all before ``send``.
    times = [
        r["t"]
        for r in records
        if r["phone_number_id"] in pids and r["status"] == 200 and r["t"] >= sent_at
    ]
    audit = httpx.get(f"{sandbox_url}/_sandbox/audit", timeout=60).json()["numbers"]
    throttled = sum(audit[pid]["errors"].get("130429", 0) for pid in pids)
    return Measured(
        completed_at - sent_at, min(times) - sent_at, completed_at - max(times), throttled
    )


def run(console: Console) -> None:
    table = Table(title="Campaigns against the sandbox (local Ray, embedded services)")
    for column in (
        "recipients",
        "numbers (msg/s)",
        "ideal s",
        "actual s",
        "ideal/actual",
        "send → 1st msg s",
        "last msg → completed s",
        "130429 (all runs)",
    ):
        table.add_column(column, justify="right")
    with local_dispatcher(_sandbox_config()) as (dispatcher, sandbox_url):
        for index, scenario in enumerate(SCENARIOS):
            measured = _run_one(dispatcher, sandbox_url, index, scenario)
            table.add_row(
                f"{scenario.recipients:,}",
                " + ".join(str(mps) for mps in scenario.limits_mps),
                f"{scenario.ideal_s:.1f}",
                f"{measured.actual_s:.2f}",
                f"{scenario.ideal_s / measured.actual_s:.3f}",
                f"{measured.first_message_s:.3f}",
                f"{measured.completion_s:.3f}",
                str(measured.throttled),
            )
    console.print(table)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    console.print(
        f"ideal: recipients / the sum of the numbers' limits; actual: send → completed "
        f"(finished_at). Load average when done: {load} on {os.cpu_count()} CPUs."
    )
