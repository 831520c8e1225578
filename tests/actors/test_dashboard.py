"""The Grafana dashboard without a Grafana: its JSON is a dashboard Grafana loads (schema
version, panels with ids, positions, a Prometheus datasource and targets), every metric it
queries is one the actors export (names read from ``actors/metrics.py`` and
``actors/instance.py``: a renamed metric breaks this test), and its queries count the current
coordinator of the deployment picked once across a failover, whatever other deployment the
same Prometheus scrapes, evaluated by Prometheus's own engine (``promtool test rules``,
Debian's ``prometheus`` package; skipped where it is not installed, failed under
``DISPATCHER_REQUIRE_PROMTOOL=1``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.util.metrics import Histogram, Metric

from actors.instance import COUNTERS, GAUGES
from actors.metrics import CoordinatorMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "dispatcher.json"
NAME = re.compile(r"\bray_dispatcher_\w+")
PROMTOOL = shutil.which("promtool")
REQUIRE_PROMTOOL = os.environ.get("DISPATCHER_REQUIRE_PROMTOOL") == "1"
"""Set by ``.ci/run`` once promtool is installed: its absence then fails, never skips."""


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def targets(deployment: str = ".*") -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every target, ``$campaign`` as "all", ``$deployment``
    as given."""
    return [
        (
            panel["title"],
            target["refId"],
            target["expr"].replace("$campaign", ".*").replace("$deployment", deployment),
        )
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def exported() -> set[str]:
    """Every series name Prometheus sees from the actors (``ray_`` added by Ray's export)."""
    names = {f"dispatcher_{name}_total" for name, _ in COUNTERS}
    names |= {f"dispatcher_{name}" for name, _ in GAUGES}
    for metric in vars(CoordinatorMetrics("test:0:names", "test")).values():
        if isinstance(metric, Histogram):
            base = metric.info["name"]
            names |= {f"{base}_bucket", f"{base}_count", f"{base}_sum"}
        elif isinstance(metric, Metric):
            names.add(metric.info["name"])
    return {f"ray_{name}" for name in names}


def test_the_dashboard_is_one_grafana_loads() -> None:
    loaded = dashboard()
    assert isinstance(loaded["schemaVersion"], int)
    assert loaded["schemaVersion"] >= 36  # the datasource-by-uid panel format
    assert loaded["uid"]
    assert loaded["title"]
    [datasource] = [v for v in loaded["templating"]["list"] if v["type"] == "datasource"]
    assert datasource["query"] == "prometheus"
    ids = [panel["id"] for panel in loaded["panels"]]
    assert len(ids) == len(set(ids)), ids
    for panel in loaded["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [target["refId"] for target in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]


def test_every_metric_the_dashboard_queries_is_one_the_actors_export() -> None:
    names = exported()
    variables = [v["definition"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    queried = {
        name for expr in [e for _, _, e in targets()] + variables for name in NAME.findall(expr)
    }
    assert queried, "no ray_dispatcher_* metric queried"
    assert queried <= names, sorted(queried - names)
    assert "ray_dispatcher_coordinator_lease_epoch" in queried  # the failover filter


def test_every_query_and_the_campaign_list_take_the_deployment_picked() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["deployment"]["definition"] == (
        "label_values(ray_dispatcher_coordinator_lease_epoch, deployment)"
    )
    assert '{deployment=~"$deployment"}' in variables["campaign"]["definition"]
    for title, ref, expr in targets("$deployment"):
        metrics = re.findall(r"\b(ray_dispatcher_\w+)(\{[^}]*\})?", expr)
        unfiltered = [
            name
            for name, labels in metrics
            if 'deployment=~"$deployment"' not in labels
            and name != "ray_dispatcher_coordinator_lease_epoch"  # matched on(deployment)
        ]
        assert not unfiltered, (title, ref, expr)


# Deployment "d1" fails over at minute 3: holder "a" (epoch 1) published until then; "b" (epoch
# 2) took over. "a" either died with its last figures still exported (stale) or stood down
# (zeroed). The same Prometheus scrapes "d2", whose holder "c" has a higher epoch (7) all along,
# and "d3", whose holder "x" exports no epoch series at all (not yet scraped, an older
# version): neither may hide d1's figures or add to them. c and x publish b's figures.
# Each series: (labels, a's value, b's value).
SERIES: list[tuple[str, str, float, float]] = [
    ("campaign_recipients", 'campaign_id="c1",status="sent"', 50, 80),
    ("campaign_recipients", 'campaign_id="c1",status="pending"', 50, 20),
    ("campaign_total_recipients", 'campaign_id="c1"', 100, 100),
    ("campaign_send_rate_mps", 'campaign_id="c1"', 10, 20),
    ("portfolio_daily_used", 'business_id="biz",source="api"', 100, 150),
    ("portfolio_daily_limit", 'business_id="biz",source="api"', 1000, 1000),
    ("webhook_lag_latest_s", "", 30, 1),
    ("queue_pending", 'queue="campaigns",instance_id="all"', 7, 2),
    ("queue_pending", 'queue="campaigns",instance_id="i1"', 7, 2),
    ("queue_pending", 'queue="webhooks",instance_id="all"', 4, 0),
    ("queue_processing", 'queue="campaigns",instance_id="all"', 5, 1),
    ("queue_processing", 'queue="campaigns",instance_id="i1"', 5, 1),
    ("queue_processing", 'queue="webhooks",instance_id="all"', 2, 0),
    ("queue_dead_letters", 'queue="campaigns",instance_id="all"', 3, 0),
    ("queue_dead_letters", 'queue="campaigns",instance_id="i1"', 3, 0),
    ("queue_dead_letters", 'queue="webhooks",instance_id="all"', 1, 0),
]
CAMPAIGNS, WEBHOOKS, I1 = '{queue="campaigns"}', '{queue="webhooks"}', '{instance_id="i1"}'
AFTER: dict[tuple[str, str], list[tuple[str, float]]] = {
    ("Recipients by status", "A"): [
        ('{campaign_id="c1",status="sent"}', 80),
        ('{campaign_id="c1",status="pending"}', 20),
    ],
    ("Progress (settled / total)", "A"): [('{campaign_id="c1"}', 0.8)],
    ("Send rate per campaign", "A"): [('{campaign_id="c1"}', 20)],
    ("Send rate per campaign", "B"): [("{}", 20)],
    ("Recipients, all", "A"): [('{campaign_id="c1"}', 100)],
    ("24 h unique recipients used vs limit", "A"): [('{business_id="biz",source="api"}', 150)],
    ("24 h unique recipients used vs limit", "B"): [('{business_id="biz",source="api"}', 1000)],
    ("24 h use, fraction of the limit", "A"): [('{business_id="biz"}', 0.15)],
    ("Webhook lag, latest", "A"): [("{}", 1)],
    ("Pending", "A"): [(CAMPAIGNS, 2), (WEBHOOKS, 0)],
    ("Pending", "B"): [(I1, 2)],
    ("Processing", "A"): [(CAMPAIGNS, 1), (WEBHOOKS, 0)],
    ("Processing", "B"): [(I1, 1)],
    ("Dead letters", "A"): [(CAMPAIGNS, 0), (WEBHOOKS, 0)],
    ("Dead letters", "B"): [(I1, 0)],
}
"""What each coordinator target shows after the failover: b's figures alone."""
BEFORE = {
    ("Recipients by status", "A"): [
        ('{campaign_id="c1",status="sent"}', 50),
        ('{campaign_id="c1",status="pending"}', 50),
    ]
}
"""Before it: a's."""


def input_series(a_after: str) -> list[dict[str, str]]:
    """d1: minutes 0-2 a alone; 3-9 b too, and a as ``a_after`` says ("stale" or "zeroed").
    d2's c (epoch 7) and d3's x (no epoch series) throughout, with b's figures."""

    def values(name: str, a: float, b: float) -> dict[tuple[str, str], str]:
        later = a if a_after == "stale" else 0
        epoch = name == "coordinator_lease_epoch"
        found = {("d1", "a"): f"{a}x2 {later}x6", ("d1", "b"): f"_x2 {b}x6"}
        found[("d2", "c")] = "7x8" if epoch else f"{b}x8"
        if not epoch:
            found[("d3", "x")] = f"{b}x8"
        return found

    series = []
    for name, labels, a, b in [("coordinator_lease_epoch", "", 1, 2), *SERIES]:
        for (deployment, holder), value in values(name, a, b).items():
            tags = [labels, f'deployment="{deployment}"', f'holder="{holder}"']
            tags.append(f'WorkerId="w{holder}"')
            label_set = ",".join(t for t in tags if t)
            series.append({"series": f"ray_dispatcher_{name}{{{label_set}}}", "values": value})
    return series


def expr_tests(
    expected: dict[tuple[str, str], list[tuple[str, float]]], at: str, deployment: str
) -> list[Any]:
    """``expected`` of the dashboard with ``deployment`` picked, at ``at``."""
    exprs = {(title, ref): expr for title, ref, expr in targets(deployment)}
    return [
        {
            "expr": exprs[key],
            "eval_time": at,
            "exp_samples": [{"labels": labels, "value": value} for labels, value in samples],
        }
        for key, samples in expected.items()
    ]


def test_every_coordinator_target_has_a_failover_expectation() -> None:
    gauges = {f"ray_dispatcher_{name}" for name, *_ in SERIES}
    reading = {(t, r) for t, r, expr in targets() if gauges & set(NAME.findall(expr))}
    assert reading == set(AFTER), sorted(reading ^ set(AFTER))


@pytest.mark.skipif(
    PROMTOOL is None and not REQUIRE_PROMTOOL, reason="no promtool (apt-get install prometheus)"
)
@pytest.mark.parametrize("a_after", ["stale", "zeroed"])
def test_the_queries_count_the_current_coordinator_once_after_a_failover(
    a_after: str, tmp_path: Path
) -> None:
    assert PROMTOOL is not None, "DISPATCHER_REQUIRE_PROMTOOL=1, and no promtool on the PATH"
    # d1 before and after its failover; d2 beside it (a higher epoch of its own); d3 without
    # any epoch series: its one holder's figures as they are.
    checks = expr_tests(BEFORE, "1m", "d1") + expr_tests(AFTER, "5m", "d1")
    checks += expr_tests(AFTER, "5m", "d2") + expr_tests(AFTER, "5m", "d3")
    spec = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series(a_after),
                "promql_expr_test": checks,
            }
        ],
    }
    path = tmp_path / "dashboard_test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    run = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
