"""A small campaign on a Ray of its own with its metrics export on, then a scrape of it.

Run by ``test_metrics.py`` in a child process (a pytest process holds one Ray connection, and
the session's Ray runs without its dashboard, which writes the Prometheus service discovery
file): ``python -m tests.actors.metrics_campaign DATABASE_URL REDIS_URL NAME...``. Scrapes
every target of THIS Ray session's service discovery file until each metric NAME is
exported (or a generous bound passes). Then another holder takes the coordinator lease in
the database (as a second ``dispatcher serve`` would once the lease ran out), and it
scrapes until the coordinator's series show it standing down. Prints one JSON line with
what it found.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import ray

from dispatcher import operations
from dispatcher.config import load_settings
from dispatcher.sandbox.server import free_port
from dispatcher.store import Store
from dispatcher.store.models import CampaignStatus, NewRecipient
from tests.stack import Stack, start_stack, stop_stack

RECIPIENTS = 300
SCRAPE_BOUND_S = 90.0
METRIC = re.compile(r"^(ray_dispatcher_\w+)(\{[^}]*\})? (\S+)", re.MULTILINE)
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
OTHER_HOLDER = "metrics-test:standby"
EPOCH = "ray_dispatcher_coordinator_lease_epoch"
TICKS = "ray_dispatcher_coordinator_tick_s_count"


def labels(line: str) -> dict[str, str]:
    """The labels of one scraped ``{labels} value`` line."""
    return dict(LABEL.findall(line.rsplit(" ", 1)[0]))


def value(line: str) -> float:
    return float(line.rsplit(" ", 1)[1])


def of_holder(found: dict[str, list[str]], holder: str) -> dict[str, list[float]]:
    """The values of every series ``holder`` published, by metric name."""
    return {
        name: [value(line) for line in lines if labels(line).get("holder") == holder]
        for name, lines in found.items()
        if any(labels(line).get("holder") == holder for line in lines)
    }


def discovery_file() -> Path:
    """This session's file (``/tmp/ray/prom_metrics_service_discovery.json`` links to the
    latest session's, which on a shared machine may be another's)."""
    session_dir = ray._private.worker._global_node.get_session_dir_path()
    return Path(session_dir) / "prom_metrics_service_discovery.json"


async def scrape(until: Callable[[dict[str, list[str]]], bool]) -> dict[str, Any]:
    """Scrape every target until ``until(found)`` (or the bound): what was found last."""
    path = discovery_file()
    deadline = time.monotonic() + SCRAPE_BOUND_S
    found: dict[str, list[str]] = {}
    targets: list[str] = []
    async with httpx.AsyncClient(timeout=10) as client:
        while time.monotonic() < deadline:
            found = {}
            if path.exists():
                groups = json.loads(path.read_text() or "[]")
                targets = [t for g in groups for t in g["targets"]]
                for target in targets:
                    try:
                        response = await client.get(f"http://{target}/metrics")
                    except httpx.HTTPError:
                        continue
                    for name, tags, number in METRIC.findall(response.text):
                        found.setdefault(name, []).append(f"{tags or ''} {number}")
            if until(found):
                break
            await asyncio.sleep(2)
    return {"discovery_file": str(path), "targets": targets, "metrics": found}


def store_name(database_url: str) -> str:
    return urlsplit(database_url).path.lstrip("/")


async def take_lease(store: Store, holder: str) -> int:
    """Take the coordinator lease from ``holder``: let it lapse, take it at once (the
    coordinator may renew in between: then again)."""
    for _ in range(50):
        await store.leases.release(holder)
        epoch = await store.leases.acquire(OTHER_HOLDER, ttl_s=600)
        if epoch is not None:
            return epoch
        await asyncio.sleep(0.1)
    raise RuntimeError("the coordinator kept its lease")


async def stand_down(stack: Stack, store: Store) -> dict[str, Any]:
    """Another holder takes the lease; the coordinator's exported series once it stood down,
    and its tick count then and again after a further export."""
    lease = (await stack.coordinator.stats.remote())["lease"]
    holder = lease["holder"]
    before = await scrape(lambda found: bool(of_holder(found, holder).get(EPOCH)))
    other_epoch = await take_lease(store, holder)

    def zeroed(found: dict[str, list[str]]) -> bool:
        mine = of_holder(found, holder)
        return bool(mine) and not any(v for values in mine.values() for v in values)

    after = await scrape(zeroed)
    await asyncio.sleep(15)  # longer than Ray's export interval (10 s)
    later = await scrape(lambda found: TICKS in found)
    return {
        "holder": holder,
        "epoch": lease["epoch"],
        "other_epoch": other_epoch,
        "before": of_holder(before["metrics"], holder),
        "epoch_lines": before["metrics"].get(EPOCH, []),
        "after": of_holder(after["metrics"], holder),
        "ticks": [after["metrics"].get(TICKS, []), later["metrics"].get(TICKS, [])],
    }


async def campaign(stack: Stack, wanted: set[str]) -> dict[str, Any]:
    store = await Store.open(stack.deployment.database_url, max_size=2)
    try:
        ids = []
        for number, business, mps in (("5001", "biz-small", 80), ("6001", "biz-large", 500)):
            instance = await operations.register_instance(
                store,
                phone_number_id=number,
                access_token=stack.numbers[number],
                business_id=business,
                throughput_mps=mps,
            )
            await stack.coordinator.refresh_instance.remote(str(instance.id))
            ids.append(instance.id)
        created = await operations.create_campaign(
            store,
            name=f"metrics-{uuid.uuid4().hex[:6]}",
            template={"name": "hello_world", "language": "en_US"},
            instance_ids=ids,
            recipients=(NewRecipient(phone=f"+55419{i:08d}") for i in range(RECIPIENTS)),
        )
        assert await stack.coordinator.start_campaign.remote(str(created.id))
        deadline = time.monotonic() + 180
        done = created
        while time.monotonic() < deadline:
            found = await store.campaigns.get(created.id)
            assert found is not None
            done = found
            if done.status is CampaignStatus.COMPLETED:
                break
            await asyncio.sleep(0.5)

        def final(found: dict[str, list[str]]) -> bool:
            """Every name, and the campaign's final figures (Ray exports every 10 s)."""
            sent = [
                value(line)
                for line in found.get("ray_dispatcher_campaign_recipients", [])
                if labels(line).get("campaign_id") == str(created.id)
                and labels(line).get("status") == "sent"
            ]
            return wanted <= found.keys() and sent == [done.total_sent]

        scraped = await scrape(final)
        return {
            "campaign_id": str(created.id),
            "status": done.status.value,
            "total_sent": done.total_sent,
            "deployment": stack.deployment.label,
            "database": store_name(stack.deployment.database_url),
            **scraped,
            "lease_lost": await stand_down(stack, store),
        }
    finally:
        await store.close()


def main(database_url: str, redis_url: str, wanted: list[str]) -> None:
    ray.init(num_cpus=2, include_dashboard=True, dashboard_port=free_port(), log_to_driver=False)
    stack = start_stack(load_settings(), database_url, redis_url)
    try:
        result = asyncio.run(campaign(stack, set(wanted)))
    finally:
        stop_stack(stack)
        ray.shutdown()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
