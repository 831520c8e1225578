"""A small campaign on a Ray of its own with its metrics export on, then a scrape of it.

Run by ``test_metrics.py`` in a child process (a pytest process holds one Ray connection, and
the session's Ray runs without its dashboard, which writes the Prometheus service discovery
file): ``python -m tests.actors.metrics_campaign DATABASE_URL REDIS_URL NAME...``. Scrapes
every target of THIS Ray session's service discovery file until each metric NAME is
exported (or a generous bound passes), and prints one JSON line with what it found.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

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


def discovery_file() -> Path:
    """This session's file (``/tmp/ray/prom_metrics_service_discovery.json`` links to the
    latest session's, which on a shared machine may be another's)."""
    session_dir = ray._private.worker._global_node.get_session_dir_path()
    return Path(session_dir) / "prom_metrics_service_discovery.json"


async def scrape(wanted: set[str]) -> dict[str, Any]:
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
                    for name, labels, value in METRIC.findall(response.text):
                        found.setdefault(name, []).append(f"{labels or ''} {value}")
            if wanted <= found.keys():
                break
            await asyncio.sleep(2)
    return {"discovery_file": str(path), "targets": targets, "metrics": found}


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
        scraped = await scrape(wanted)
        return {
            "campaign_id": str(created.id),
            "status": done.status.value,
            "total_sent": done.total_sent,
            **scraped,
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
