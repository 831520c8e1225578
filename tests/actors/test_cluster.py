"""The end-to-end campaign on a three-node Ray cluster: instance actors spread over nodes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dispatcher.services import ServiceUrls

ROOT = Path(__file__).resolve().parents[2]


def test_a_campaign_on_three_nodes_spreads_its_numbers_and_sends_everything_once(
    database_url: str, service_urls: ServiceUrls
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.actors.cluster_campaign",
            database_url,
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
    assert len(result["nodes"]) >= 2, result["nodes"]  # SPREAD: not all on one node
    audit = result["audit"]
    assert audit["accepted"] == 2_000
    assert audit["duplicate_sends"] == 0
    assert audit["throughput_violations"] == audit["pair_violations"] == 0
    assert audit["tier_violations"] == 0
