"""The scenarios of the chaos suite and the two profiles that pick them.

``full`` (``make chaos``) runs every fault of issue 11 with campaigns long enough for the fault
to land mid-flight; ``short`` (CI) runs the ones that pass today, smaller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from dispatcher.engine.config import EngineConfig
from tests.chaos import faults
from tests.chaos.campaign import CampaignRun, Number

Inject = Callable[[CampaignRun, "Scenario"], Awaitable[list[str]]]

TWO_NUMBERS = (Number("7001", 80), Number("7002", 40))
THREE_NUMBERS = (*TWO_NUMBERS, Number("7003", 40))


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    fault: str
    """What the table calls it."""
    inject: Inject
    size: int
    bound_s: float
    """From send to completed, at most; past it the row fails (the run goes on)."""
    numbers: tuple[Number, ...] = TWO_NUMBERS
    kills: int = 0
    every_s: float = 3.0
    sandbox_faults: dict[str, Any] = field(default_factory=dict)
    cluster: bool = False
    serves: int = 1


RESTART_S = 60.0
"""A new serve (its Ray, its actors) ready on a loaded 2-core machine: 15-40 s measured."""
AFTER_A_LOST_SENDER_S = RESTART_S + EngineConfig().in_doubt_bound().max_wait_s + 60.0
"""Sends a killed sender left in doubt, with no webhook traffic after them (the campaign's
tail), wait for the in-doubt bound's maximum before the policy resends them (DESIGN.md,
"Delivery guarantees"): the restart, that wait, then the resend."""


def _all(short: bool) -> list[Scenario]:
    small = 1_500 if short else 3_000
    return [
        Scenario("baseline", "none (control)", faults.no_fault, size=small, bound_s=150),
        Scenario(
            "instance-kill",
            f"SIGKILL instance actors x{3 if short else 10}",
            faults.kill_instance_actors,
            size=1_500 if short else 6_000,
            bound_s=150 if short else 300,
            kills=3 if short else 10,
        ),
        Scenario(
            "instance-sigstop",
            "SIGSTOP an actor past replacement, SIGCONT",
            faults.stop_an_instance_actor,
            size=small,
            bound_s=faults.REPLACE_AFTER_S + 300,
            # One number: its work cannot move elsewhere, so the replacement and the resumed
            # process both meet the stopped one's batch.
            numbers=TWO_NUMBERS[:1],
        ),
        Scenario(
            "serve-kill",
            "SIGKILL serve + its Ray, restart",
            faults.kill_serve,
            size=small,
            bound_s=AFTER_A_LOST_SENDER_S,
        ),
        Scenario(
            "postgres-restart",
            "Postgres restarted",
            faults.restart_postgres,
            size=small,
            bound_s=120 if short else 180,
        ),
        Scenario(
            "redis-restart",
            "Redis restarted",
            faults.restart_redis,
            size=small,
            bound_s=120 if short else 180,
        ),
        Scenario(
            "redis-flush",
            "Redis data lost (FLUSHALL)",
            faults.flush_redis,
            size=small,
            bound_s=150,
        ),
        Scenario(
            "node-removed",
            "worker node removed (3-node cluster)",
            faults.remove_a_node,
            size=small,
            bound_s=faults.REPLACE_AFTER_S + 300,
            numbers=THREE_NUMBERS,
            cluster=True,
        ),
        Scenario(
            "lost-responses",
            "sandbox: 10% accepted then timed out, 30% 5xx",
            faults.sandbox_faults_only,
            size=1_000 if short else 2_000,
            bound_s=300,
            # Longer than the client's 15 s request timeout: the answer is lost, not late.
            sandbox_faults={"accept_timeout_ratio": 0.1, "error_5xx_ratio": 0.3, "timeout_s": 20},
        ),
        Scenario(
            "two-serves",
            "two serves on one database, active killed",
            faults.kill_the_active_serve,
            size=small,
            bound_s=AFTER_A_LOST_SENDER_S,
            serves=2,
        ),
    ]


SHORT = ("baseline", "redis-restart")
"""The control and a fault of a minute, for CI; ``make chaos`` runs them all. The Postgres
restart stays out: in a short run its row once saw 1 message over a limit in a second where
the control saw none (every recipient reached once): see the note on sends resuming."""


def profile(name: str, only: list[str] | None = None) -> list[Scenario]:
    scenarios = _all(short=name == "short")
    if only:
        unknown = set(only) - {s.name for s in scenarios}
        if unknown:
            raise ValueError(f"unknown scenarios {sorted(unknown)}")
        return [s for s in scenarios if s.name in only]
    if name == "short":
        return [s for s in scenarios if s.name in SHORT]
    return scenarios


def names() -> list[str]:
    return [s.name for s in _all(short=False)]
