"""One scenario's campaign: a fresh database, a sandbox, ``dispatcher serve``, driven over HTTP.

The harness talks to the dispatcher only as a user does (the REST API) and to Meta's stand-in
through its control API; the verdict comes from the sandbox, never from our own counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from dispatcher.meta.tiers import MessagingTier
from dispatcher.sandbox.config import NumberConfig, PortfolioConfig, SandboxConfig
from dispatcher.sandbox.control import SandboxControl
from dispatcher.sandbox.server import SandboxProcess, free_port
from dispatcher.store.db import create_database
from tests.chaos.report import Row, judge
from tests.chaos.world import API_TOKEN, APP_SECRET, OwnServers, ServeProcess
from tests.stack import webhook_config

log = logging.getLogger(__name__)

BUSINESS = "biz-chaos"
SERVE_READY_S = 150.0
MAX_REQUEST_RECORDS = 200_000


@dataclass(frozen=True, slots=True)
class Number:
    phone_number_id: str
    throughput_mps: int

    @property
    def token(self) -> str:
        return f"tok-{self.phone_number_id}"


def sandbox_config(numbers: list[Number], webhook_url: str) -> SandboxConfig:
    return SandboxConfig(
        numbers=[
            NumberConfig(
                phone_number_id=n.phone_number_id,
                token=n.token,
                business_id=BUSINESS,
                throughput_mps=n.throughput_mps,
            )
            for n in numbers
        ],
        portfolios=[PortfolioConfig(business_id=BUSINESS, messaging_tier=MessagingTier.TIER_100K)],
        webhook=webhook_config(webhook_url, APP_SECRET),
    )


class CampaignRun:
    """Everything one scenario starts; :meth:`close` ends every process of it."""

    def __init__(
        self, root: Path, servers: OwnServers, label: str, numbers: list[Number], size: int
    ) -> None:
        self.root = root
        self.servers = servers
        self.label = label
        self.numbers = numbers
        self.addresses = [f"+55319{i:08d}" for i in range(size)]
        self.database_url = ""
        self.sandbox: SandboxProcess | None = None
        self.control: SandboxControl | None = None
        self.serves: list[ServeProcess] = []
        self.active: ServeProcess | None = None
        self.instance_ids: dict[str, str] = {}
        self.campaign_id = ""
        self.sent_at = 0.0
        self.webhook_port = free_port()
        self.cluster: Any = None
        self.marks: list[tuple[float, str]] = []
        """(monotonic time, what) of each fault: the sandbox stamps requests on the same
        system-wide monotonic clock, so a refusal can be placed after the fault it follows."""
        """A ``ray.cluster_utils.Cluster`` when the scenario runs on one."""
        self._generation = 0

    # -- setting up ---------------------------------------------------------------------

    async def prepare(
        self, ray_address: str | None = None, webhook_port: int | None = None
    ) -> None:
        """A database of its own, a clean queue, the sandbox, and one serve, ready."""
        name = f"chaos_{self.label.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
        self.database_url = await create_database(self.servers.postgres_url, name)
        self.servers.flush_redis()  # our own server: the previous scenario's queue goes
        port = webhook_port or self.webhook_port
        self.sandbox = SandboxProcess(
            sandbox_config(self.numbers, f"http://127.0.0.1:{port}/api/whatsapp/webhook")
        )
        await asyncio.to_thread(self.sandbox.start)
        self.control = SandboxControl(self.sandbox.url)
        self.active = await self.start_serve(self.webhook_port, ray_address)

    async def start_serve(self, port: int, ray_address: str | None = None) -> ServeProcess:
        assert self.sandbox is not None
        self._generation += 1
        serve = ServeProcess(
            self.root,
            f"{self.label}-{self._generation}",
            port,
            self.database_url,
            self.servers.redis_url,
            self.sandbox.url,
            ray_address,
        )
        self.serves.append(serve)
        serve.start()
        await asyncio.to_thread(serve.wait_ready, SERVE_READY_S)
        return serve

    def api(self, serve: ServeProcess | None = None) -> httpx.AsyncClient:
        target = serve or self.active
        assert target is not None
        return httpx.AsyncClient(
            base_url=f"{target.url}/api/whatsapp",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=15,
        )

    async def create(self) -> None:
        async with self.api() as api:
            for number in self.numbers:
                response = await api.post(
                    "/instances",
                    json={
                        "phone_number_id": number.phone_number_id,
                        "access_token": number.token,
                        "business_id": BUSINESS,
                        "messaging_tier": "TIER_100K",
                        "throughput_mps": number.throughput_mps,
                    },
                )
                response.raise_for_status()
                self.instance_ids[number.phone_number_id] = response.json()["id"]
            response = await api.post(
                "/campaigns",
                json={
                    "name": f"chaos {self.label}",
                    "instance_ids": list(self.instance_ids.values()),
                    "template": {"name": "hello_world", "language": "en_US"},
                    "recipients": [{"phone": a} for a in self.addresses],
                },
            )
            response.raise_for_status()
            self.campaign_id = response.json()["id"]

    async def send(self) -> None:
        async with self.api() as api:
            (await api.post(f"/campaigns/{self.campaign_id}/send")).raise_for_status()
        self.sent_at = time.monotonic()

    # -- watching -----------------------------------------------------------------------

    async def campaign(self) -> dict[str, Any] | None:
        """The campaign as the API shows it; None while the API cannot answer (a fault)."""
        with contextlib.suppress(httpx.HTTPError, ValueError):
            async with self.api() as api:
                response = await api.get(f"/campaigns/{self.campaign_id}")
                if response.status_code == 200:
                    result: dict[str, Any] = response.json()
                    return result
        return None

    async def sent_at_least(self, share: float, timeout_s: float) -> int:
        """Wait until this share of the campaign is sent; how many are."""
        deadline = time.monotonic() + timeout_s
        sent = 0
        while time.monotonic() < deadline:
            found = await self.campaign()
            if found is not None:
                sent = int(found["total_sent"])
                if sent >= share * len(self.addresses) or found["status"] == "completed":
                    return sent
            await asyncio.sleep(0.3)
        return sent

    async def instance_stats(
        self, phone_number_id: str, serve: ServeProcess | None = None
    ) -> dict[str, Any]:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            async with self.api(serve) as api:
                response = await api.get(f"/instances/{self.instance_ids[phone_number_id]}")
                if response.status_code == 200:
                    stats = response.json().get("stats")
                    return stats if isinstance(stats, dict) else {}
        return {}

    async def wait_completed(self, bound_s: float) -> tuple[float | None, str]:
        """Seconds from send to ``completed``, or None past the bound; the last status."""
        deadline = self.sent_at + bound_s
        status = "unknown"
        while time.monotonic() < deadline:
            found = await self.campaign()
            if found is not None:
                status = (
                    f"{found['status']}: sent {found['total_sent']}, failed "
                    f"{found['total_failed']}, pending {found['pending']}, queued "
                    f"{found['queued']}, sending {found['sending']}"
                )
                if found["status"] == "completed":
                    return time.monotonic() - self.sent_at, status
                if found["status"] in ("failed", "cancelled"):
                    return None, status
            await asyncio.sleep(1.0)
        return None, status

    # -- the verdict and the end ----------------------------------------------------------

    async def verdict(
        self, fault: str, completed_s: float | None, notes: list[str], error: str | None
    ) -> Row:
        assert self.control is not None
        # Statuses of the last sends are still due; the audit of sends is final already.
        audit = await self.control.audit()
        records = await self.control.requests(limit=MAX_REQUEST_RECORDS)
        limits = {n.phone_number_id: n.throughput_mps for n in self.numbers}
        row = judge(fault, self.addresses, records, audit, completed_s, notes, error, limits)
        extra = [*refusals_after_marks(records, [(self.sent_at, "send"), *self.marks])]
        if audit.get("duplicate_examples"):
            extra.append(f"duplicate callback ids e.g. {audit['duplicate_examples'][:3]}")
        extra.append(
            "sandbox: "
            + ", ".join(
                f"{pid} accepted {a['accepted']} max {a['max_received_per_s']}/s "
                f"errors {a['errors']} viol t{a['throughput_violations']}"
                f"/p{a['pair_violations']}/l{a['tier_violations']}"
                for pid, a in audit["numbers"].items()
            )
            + f"; faults {audit['faults_injected']}"
        )
        return replace(row, notes=(*row.notes, *extra))

    def mark(self, what: str) -> None:
        self.marks.append((time.monotonic(), what))

    def logs(self) -> list[str]:
        return [str(serve.log_path) for serve in self.serves]

    def end_processes(self) -> None:
        """Every process of the scenario, at once and without awaiting anything: this runs
        even while the run is being cancelled (Ctrl-C), when an await would not return."""
        for serve in self.serves:
            serve.kill()
        if self.sandbox is not None:
            self.sandbox.stop()
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster = None

    async def close(self) -> None:
        self.end_processes()
        if self.control is not None:
            await self.control.aclose()


def refusals_after_marks(
    records: list[dict[str, Any]], marks: list[tuple[float, str]], within_s: float = 5.0
) -> list[str]:
    """Where the sandbox's refusals (4xx: throttles, pair rate) fell against the faults."""
    refused = [r for r in records if 400 <= int(r["status"]) < 500]
    if not refused:
        return []
    near: Counter[str] = Counter()
    for record in refused:
        before = [(t, what) for t, what in marks if t <= record["t"]]
        if before and record["t"] - max(before)[0] <= within_s:
            near[max(before)[1]] += 1
    after = ", ".join(f"{n} after {what}" for what, n in near.most_common(5)) or "none"
    return [
        f"{len(refused)} requests refused with 4xx; within {within_s:.0f}s of an event: {after}"
    ]
