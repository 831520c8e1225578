"""``/openapi.json`` describes exactly the routes, and a schemathesis run finds no 5xx."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest
from starlette.routing import Route

from api import console
from api.app import OPERATIONS, create_app
from tests.api.conftest import create_campaign, phones
from tests.stack import API_TOKEN, Stack

ROOT = Path(__file__).resolve().parents[2]
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "200"))
"""Per operation (the fuzzing phase; the coverage phase adds the schema's edge cases)."""
FUZZ_REGISTRATIONS = int(os.environ.get("FUZZ_MAX_REGISTRATIONS", "25"))
"""``POST /instances`` alone: each valid registration restarts an instance actor (a second or
more on a loaded machine). At 200 it took 505 s of a 593 s run niced on a busy 2-core box;
at this budget the whole run takes a few minutes. ``make fuzz`` raises both."""
FUZZ_TIMEOUT_S = int(os.environ.get("FUZZ_TIMEOUT_S", "840"))


async def test_the_document_lists_every_route_with_its_methods(
    anonymous: httpx.AsyncClient, stack: Stack
) -> None:
    document = (await anonymous.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    app = create_app(stack.settings, stack.deployment, stack.coordinator)
    served = {
        route.path.replace(":uuid", ""): {m for m in route.methods or () if m != "HEAD"}
        for route in app.routes
        if isinstance(route, Route)
        and route.path != "/openapi.json"
        and route.path not in console.PATHS  # a page for people, not an API operation
    }
    documented = {path: {m.upper() for m in item} for path, item in document["paths"].items()}
    assert documented == served
    assert len(OPERATIONS) == sum(len(methods) for methods in served.values())
    bodies = {
        (path, method): item["requestBody"]["content"]
        for path, items in document["paths"].items()
        for method, item in items.items()
        if "requestBody" in item
    }
    campaign = bodies[("/api/whatsapp/campaigns", "post")]["application/json"]["schema"]
    assert campaign == {"$ref": "#/components/schemas/CampaignIn"}
    schema = document["components"]["schemas"]["CampaignIn"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "instance_ids"}  # and template or variants
    recipient = document["components"]["schemas"]["RecipientIn"]["properties"]
    assert recipient["phone"]["anyOf"][0]["pattern"] == r"^\+[1-9][0-9]{6,14}$"
    assert set(bodies[("/api/whatsapp/campaigns/{campaign_id}/recipients", "post")]) == {
        "application/x-ndjson",
        "application/jsonl",
        "text/csv",
    }
    public = {
        path
        for path, items in document["paths"].items()
        for item in items.values()
        if item.get("security") == []
    }
    assert public == {"/api/whatsapp/webhook", "/healthz", "/readyz"}


@pytest.mark.timeout(FUZZ_TIMEOUT_S + 60)
async def test_schemathesis_finds_no_server_error(
    api: httpx.AsyncClient, idle_instance: str, stack: Stack, tmp_path: Path
) -> None:
    """Every operation, positive and negative data, against the live API: never a 5xx.

    Half the path ids are a real campaign and instance (see fuzz_hooks), so lifecycle
    actions, bulk appends and pages run on real rows, not only into 404s.
    """
    campaign = await create_campaign(api, [idle_instance], phones(3))
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[[operations]]\n"
        'include-name = "POST /api/whatsapp/instances"\n'
        f"generation.max-examples = {min(FUZZ_REGISTRATIONS, FUZZ_EXAMPLES)}\n"
    )
    started = time.monotonic()
    result = await asyncio.to_thread(
        subprocess.run,
        [
            str(Path(sys.executable).parent / "st"),
            "--config-file",
            str(config),
            "run",
            f"{stack.api.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {API_TOKEN}",
            "--max-examples",
            str(FUZZ_EXAMPLES),
            "--phases",
            "examples,coverage,fuzzing",
            # One worker: CPython 3.11 raises "SystemError: AST constructor recursion depth
            # mismatch" when threads run ast.parse at once (hypothesis describes
            # schemathesis's filter lambdas that way): the run fails, not our API.
            "--workers",
            "1",
            "--seed",
            os.environ.get("FUZZ_SEED", "20251126"),
            "--suppress-health-check",
            "all",
            "--generation-database",
            "none",
            "--request-timeout",
            "60",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
            "--no-color",
        ],
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.api.fuzz_hooks",
            "PYTHONPATH": str(ROOT),
            "FUZZ_CAMPAIGN_ID": campaign["id"],
            "FUZZ_INSTANCE_ID": idle_instance,
        },
        cwd=tmp_path,  # its caches land there, not in the work tree
        capture_output=True,
        text=True,
        timeout=FUZZ_TIMEOUT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8_000:] + _slowest(tmp_path)
    print(f"schemathesis: {time.monotonic() - started:.0f}s\n{output[-3_000:]}{_slowest(tmp_path)}")


def _slowest(report_dir: Path, count: int = 6) -> str:
    """The operations that took longest (from schemathesis' JUnit report): where a budget
    goes when the run nears its timeout."""
    times = [
        (float(case.get("time", 0)), case.get("name", "?"))
        for path in report_dir.glob("*.xml")
        # S314: the XML is schemathesis' own report, just written to this test's tmp_path.
        for case in ElementTree.parse(path).iter("testcase")  # noqa: S314
    ]
    rows = [f"  {seconds:6.1f}s {name}" for seconds, name in sorted(times, reverse=True)[:count]]
    return "\nslowest operations:\n" + "\n".join(rows) if rows else ""
