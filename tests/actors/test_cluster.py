"""The end-to-end campaign on a three-node Ray cluster: instance actors spread over nodes."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dispatcher.services import ServiceUrls
from dispatcher.store.db import create_database, drop_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def own_database(service_urls: ServiceUrls) -> AsyncIterator[str]:
    """A database of the cluster's own: one database is one deployment, and the session's
    coordinator would otherwise drive this test's campaign too."""
    name = f"dispatcher_cluster_{uuid.uuid4().hex[:10]}"
    url = await create_database(service_urls.database_url, name)
    yield url
    await drop_database(service_urls.database_url, name)


def test_a_campaign_on_three_nodes_spreads_its_numbers_and_sends_everything_once(
    own_database: str, service_urls: ServiceUrls
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.actors.cluster_campaign",
            own_database,
            service_urls.redis_url,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["cluster_nodes"] == 3
    assert result["status"] == "completed"
    assert result["total_sent"] == result["total_recipients"] == 2_000
    assert len(result["nodes"]) == 3, result["nodes"]  # one number per node
    audit = result["audit"]
    assert audit["accepted"] == 2_000, json.dumps(result)
    assert audit["duplicate_sends"] == 0
    assert audit["throughput_violations"] == audit["pair_violations"] == 0
    assert audit["tier_violations"] == 0
