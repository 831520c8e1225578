"""A campaign on a three-node Ray cluster on this machine (``ray.cluster_utils.Cluster``).

Run by ``test_cluster.py`` in a child process, since a pytest process holds one Ray
connection: ``python -m tests.actors.cluster_campaign DATABASE_URL REDIS_URL``. Prints one
JSON line with what the test asserts on.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

import ray
from ray.cluster_utils import Cluster

from actors.coordinator import coordinator_handle
from dispatcher import operations
from dispatcher.deployment import Deployment
from dispatcher.sandbox.control import SandboxControl
from dispatcher.sandbox.server import SandboxProcess
from dispatcher.store import Store
from dispatcher.store.models import CampaignStatus, NewRecipient
from tests.stack import sandbox_config, test_engine_config

NUMBERS = {"5001": ("biz-small", 80), "5002": ("biz-small", 40), "6001": ("biz-large", 500)}


async def campaign(deployment: Deployment, coordinator: object, sandbox_url: str) -> dict:
    store = await Store.open(deployment.database_url, max_size=2)
    try:
        ids = []
        for number, (business, mps) in NUMBERS.items():
            instance = await operations.register_instance(
                store,
                phone_number_id=number,
                access_token=f"tok-{number}",
                business_id=business,
                throughput_mps=mps,
            )
            await coordinator.refresh_instance.remote(str(instance.id))  # type: ignore[attr-defined]
            ids.append(instance.id)
        created = await operations.create_campaign(
            store,
            name=f"cluster-{uuid.uuid4().hex[:6]}",
            template={"name": "hello_world", "language": "en_US"},
            instance_ids=ids,
            recipients=(NewRecipient(phone=f"+55319{i:08d}") for i in range(2_000)),
        )
        await coordinator.start_campaign.remote(str(created.id))  # type: ignore[attr-defined]
        started = time.monotonic()
        deadline = time.monotonic() + 180
        done = created
        while time.monotonic() < deadline:
            found = await store.campaigns.get(created.id)
            assert found is not None
            done = found
            if done.status is CampaignStatus.COMPLETED:
                break
            await asyncio.sleep(0.5)
        stats = await coordinator.stats.remote()  # type: ignore[attr-defined]
        control = SandboxControl(sandbox_url)
        audit = await control.audit()
        await control.aclose()
        return {
            "status": done.status.value,
            "campaign_s": round(time.monotonic() - started, 1),
            "total_sent": done.total_sent,
            "total_recipients": done.total_recipients,
            "nodes": sorted({s["node_id"] for s in stats["instances"].values() if "node_id" in s}),
            "placement": {
                s.get("phone_number_id", key): [s.get("node_id", s.get("state")), s.get("sent")]
                for key, s in stats["instances"].items()
            },
            "sandbox_numbers": {k: v["accepted"] for k, v in audit["numbers"].items()},
            "ray_address": ray.get_runtime_context().gcs_address,
            "cluster_nodes": len([n for n in ray.nodes() if n["Alive"]]),
            "audit": {
                key: audit[key]
                for key in (
                    "accepted",
                    "duplicate_sends",
                    "throughput_violations",
                    "pair_violations",
                    "tier_violations",
                )
            },
        }
    finally:
        await store.close()


def main(database_url: str, redis_url: str) -> None:
    began = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    print(f"cluster up in {time.monotonic() - began:.1f}s", file=sys.stderr)
    tag = uuid.uuid4().hex[:8]
    config = sandbox_config(webhook_url="")
    config.webhook.url = None  # no API here: the campaign's sends are what is checked
    with SandboxProcess(config) as sandbox:
        deployment = Deployment(
            database_url=database_url,
            redis_url=redis_url,
            graph_url=sandbox.url,
            api_version="v23.0",
            queue_prefix=f"cluster:{tag}:",
            namespace=f"cluster-{tag}",
            engine=test_engine_config(),
        )
        coordinator = coordinator_handle(deployment)
        assert ray.get(coordinator.ping.remote())["ready"]
        try:
            result = asyncio.run(campaign(deployment, coordinator, sandbox.url))
        finally:
            ray.get(coordinator.shutdown.remote(), timeout=60)
            ray.kill(coordinator, no_restart=True)
    ray.shutdown()
    cluster.shutdown()
    result["total_s"] = round(time.monotonic() - began, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
