"""``/queue/stats``: depths, live stats, and the operator's actions."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api.conftest import PREFIX, assert_error, signed
from tests.stack import wait_until


async def test_stats_show_queues_instances_and_portfolios(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    response = await api.get("/queue/stats")
    assert response.status_code == 200, response.text
    stats = response.json()
    assert set(stats) == {"campaigns", "webhooks", "instances", "portfolios", "routing"}
    for queue in ("campaigns", "webhooks"):
        assert {"pending", "processing", "dlq"} <= set(stats[queue])
    assert "Infinity" not in response.text
    assert "NaN" not in response.text

    async def one() -> dict[str, Any] | None:
        shown = await api.get("/queue/stats", params={"instanceId": idle_instance})
        assert shown.status_code == 200
        body: dict[str, Any] = shown.json()
        return body if body["instances"].get(idle_instance) else None

    only = await wait_until(one, timeout_s=60)
    assert list(only["instances"]) == [idle_instance]
    shown = only["instances"][idle_instance]
    # With or without an actor (none while it has no work), its figures are shown; a
    # running actor's include its breaker.
    assert shown["phone_number_id"]
    assert shown["configured_rate_mps"] > 0
    assert shown["state"] != "running" or "breaker" in shown


async def test_stats_of_an_unknown_or_malformed_instance(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/queue/stats", params={"instanceId": str(uuid.uuid4())}), 404)
    assert_error(await api.get("/queue/stats", params={"instanceId": "nope"}), 422)


@pytest.mark.parametrize("queue", ["campaigns", "webhooks"])
@pytest.mark.parametrize("action", ["retry_dlq", "clear", "recover_stuck"])
async def test_every_action_on_every_queue(api: httpx.AsyncClient, action: str, queue: str) -> None:
    response = await api.post("/queue/stats", json={"action": action, "queue": queue})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["action"] == action
    assert body["queue"] == queue
    expected = {
        "retry_dlq": {"retried"}
        | (
            {"revived", "requeued", "in_doubt", "campaigns_reopened"}
            if queue == "campaigns"
            else set()
        ),
        "clear": {"cleared"} | ({"requeued"} if queue == "campaigns" else set()),
        "recover_stuck": {"requeued_batches", "dead"}
        | (
            {"stale", "stale_in_doubt", "dead_requeued", "dead_in_doubt"}
            if queue == "campaigns"
            else set()
        ),
    }[action]
    assert set(body["result"]) == expected


async def test_a_dead_letter_is_retried_then_cleared(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    """A signed callback that is not Meta's shape is dead-lettered by the applier."""
    content, headers = signed({"object": "whatsapp_business_account", "entry": "broken"})
    assert (
        await anonymous.post(PREFIX + "/webhook", content=content, headers=headers)
    ).status_code == 200

    async def dead() -> int:
        dlq: int = (await api.get("/queue/stats")).json()["webhooks"]["dlq"]
        return dlq

    await wait_until(dead, timeout_s=30)
    retried = await api.post("/queue/stats", json={"action": "retry_dlq", "queue": "webhooks"})
    assert retried.status_code == 200
    assert len(retried.json()["result"]["retried"]) >= 1
    await wait_until(dead, timeout_s=30)  # dead-lettered again: it is still malformed
    cleared = await api.post("/queue/stats", json={"action": "clear", "queue": "webhooks"})
    assert cleared.json()["result"]["cleared"] >= 1
    assert (await api.get("/queue/stats")).json()["webhooks"]["dlq"] == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"action": "explode", "queue": "campaigns"}, 400, "unknown_action"),
        ({"action": "clear", "queue": "emails"}, 400, "unknown_queue"),
        ({"queue": "campaigns"}, 422, "validation_error"),
        (
            {"action": "retry_dlq", "queue": "campaigns", "jobId": "x; FLUSHALL"},
            422,
            "validation_error",
        ),
        ({"action": "retry_dlq", "queue": "campaigns", "extra": 1}, 422, "validation_error"),
        ({"action": "clear", "queue": "campaigns", "jobId": "1-0"}, 400, "bad_request"),
    ],
)
async def test_bad_actions(
    api: httpx.AsyncClient, body: dict[str, Any], status: int, code: str
) -> None:
    assert_error(await api.post("/queue/stats", json=body), status, code)


async def test_retry_one_job_id(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/queue/stats", json={"action": "retry_dlq", "queue": "campaigns", "jobId": "1-0"}
    )
    assert response.status_code == 200
    assert response.json()["result"] == {
        "retried": 0,
        "revived": 0,
        "requeued": 0,
        "in_doubt": 0,
        "campaigns_reopened": 0,
    }
