"""Ray metrics end to end: every ``ray_dispatcher_*`` name the Grafana dashboard queries is
exported by a real deployment's Ray after a campaign, found through the Prometheus service
discovery file that the scrape config in ``ops/prometheus`` reads; the coordinator's series
carry its holder id and deployment, its lease epoch is exported, and once another holder took
the lease in the database every series it published reads 0 and its ticks are no longer
counted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.services import ServiceUrls
from dispatcher.store.db import create_database, drop_database

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "dispatcher.json"
PROMETHEUS = ROOT / "ops" / "prometheus" / "prometheus.yml"
NAME = re.compile(r"\bray_dispatcher_\w+")


def dashboard_metrics() -> set[str]:
    """Metric names in the ``expr`` of every panel target."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return {name for expr in exprs for name in NAME.findall(expr)}


@pytest.fixture
async def own_database(service_urls: ServiceUrls) -> AsyncIterator[str]:
    """A database of the child's own: one database is one deployment."""
    name = f"dispatcher_metrics_{uuid.uuid4().hex[:10]}"
    url = await create_database(service_urls.database_url, name)
    yield url
    await drop_database(service_urls.database_url, name)


def test_the_dashboard_queries_the_coordinator_metrics_and_every_panel_has_a_query() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p.get("targets") for p in panels), [p["title"] for p in panels]
    names = dashboard_metrics()
    for wanted in (
        "ray_dispatcher_campaign_recipients",
        "ray_dispatcher_campaign_total_recipients",
        "ray_dispatcher_campaign_send_rate_mps",
        "ray_dispatcher_portfolio_daily_used",
        "ray_dispatcher_portfolio_daily_limit",
        "ray_dispatcher_webhook_lag_latest_s",
        "ray_dispatcher_webhook_lag_s_bucket",
        "ray_dispatcher_queue_pending",
        "ray_dispatcher_queue_processing",
        "ray_dispatcher_queue_dead_letters",
        "ray_dispatcher_coordinator_tick_s_bucket",
    ):
        assert wanted in names, wanted


def test_the_scrape_config_reads_rays_service_discovery_file() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    files = [
        path
        for job in config["scrape_configs"]
        for sd in job.get("file_sd_configs", [])
        for path in sd["files"]
    ]
    assert "/tmp/ray/prom_metrics_service_discovery.json" in files  # noqa: S108 (Ray's path)


def test_every_metric_the_dashboard_queries_is_exported_after_a_campaign(
    own_database: str, service_urls: ServiceUrls
) -> None:
    wanted = sorted(dashboard_metrics())
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.actors.metrics_campaign",
            own_database,
            service_urls.redis_url,
            *wanted,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["status"] == "completed"
    assert result["targets"], result["discovery_file"]
    exported = result["metrics"]
    missing = [name for name in wanted if name not in exported]
    assert not missing, (missing, sorted(exported))
    # The campaign's final figures, as published when it stopped running.
    sent = [
        line
        for line in exported["ray_dispatcher_campaign_recipients"]
        if f'campaign_id="{result["campaign_id"]}"' in line and 'status="sent"' in line
    ]
    assert sent, sorted(exported["ray_dispatcher_campaign_recipients"])
    assert float(sent[0].split()[-1]) == result["total_sent"] == 300, sent
    check_lease_loss(result)


def labels(line: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit(" ", 1)[0]))


def check_lease_loss(result: dict[str, Any]) -> None:
    """While it held the lease: its epoch under its holder id and deployment, every gauge
    tagged so. Once another holder took it (a higher epoch): every series 0, ticks still."""
    lost = result["lease_lost"]
    holder, deployment = lost["holder"], result["deployment"]
    assert deployment.endswith("/" + result["database"]), deployment
    [epoch_line] = [line for line in lost["epoch_lines"] if labels(line)["holder"] == holder]
    assert labels(epoch_line)["deployment"] == deployment
    assert float(epoch_line.rsplit(" ", 1)[1]) == lost["epoch"] >= 1
    assert lost["other_epoch"] > lost["epoch"]
    before = lost["before"]
    gauges = {name for name in result["metrics"] if name in before}
    assert gauges >= {
        "ray_dispatcher_coordinator_lease_epoch",
        "ray_dispatcher_campaign_recipients",
        "ray_dispatcher_queue_pending",
        "ray_dispatcher_portfolio_daily_limit",
    }, sorted(before)
    assert any(v for values in before.values() for v in values)
    after = lost["after"]
    assert set(after) == set(before)
    nonzero = {name: values for name, values in after.items() if any(values)}
    assert not nonzero, nonzero
    ticks = [
        [
            float(line.rsplit(" ", 1)[1])
            for line in lines
            if labels(line).get("deployment") == deployment
        ]
        for lines in lost["ticks"]
    ]
    assert ticks[0], lost["ticks"]
    assert ticks[0] == ticks[1], ticks  # a standby's ticks are not counted
