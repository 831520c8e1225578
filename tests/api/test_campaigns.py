from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from dispatcher.store import Store
from dispatcher.store.models import NewRecipient
from tests.api.conftest import TEMPLATE, assert_error, create_campaign, phones, register, unique
from tests.stack import wait_until


async def test_create_and_show_a_draft(api: httpx.AsyncClient, idle_instance: str) -> None:
    recipients = [
        {"phone": "+5511999990001", "variables": {"name": "Ana"}},
        {"user_id": "BR.1502576394655843", "variables": ["x", "y"]},
    ]
    campaign = await create_campaign(api, [idle_instance], recipients)
    assert campaign["status"] == "draft"
    assert campaign["total_recipients"] == 2
    assert campaign["pending"] == 2
    assert campaign["template"] == TEMPLATE
    shown = await api.get(f"/campaigns/{campaign['id']}")
    assert shown.status_code == 200
    assert shown.json() == campaign


async def test_a_parent_bsuid_is_a_recipient(
    api: httpx.AsyncClient, idle_instance: str, store: Store
) -> None:
    parent = "US.ENT.11815799212886844830"
    campaign = await create_campaign(api, [idle_instance], [{"user_id": parent}])
    listed = (await api.get(f"/campaigns/{campaign['id']}/recipients")).json()["items"]
    assert [(r["user_id"], r["phone"]) for r in listed] == [(parent, None)]
    assert listed[0]["error_details"] is None
    appended = await store.recipients.ingest(
        uuid.UUID(campaign["id"]), [NewRecipient(user_id="BR.ENT.abc123")]
    )
    assert appended.rows == 1


async def test_scheduled_at_makes_a_scheduled_campaign(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    when = datetime.now(UTC) + timedelta(days=1)
    campaign = await create_campaign(api, [idle_instance], phones(1), scheduled_at=when.isoformat())
    assert campaign["status"] == "scheduled"
    assert datetime.fromisoformat(campaign["scheduled_at"]) == when
    cancelled = await api.post(f"/campaigns/{campaign['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"


def _body(instance: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "x",
        "instance_ids": [instance],
        "template": dict(TEMPLATE),
        "recipients": [{"phone": "+5511999990001"}],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("phone without +", {"recipients": [{"phone": "5511999990001"}]}, "recipients.0.phone"),
    ("phone too short", {"recipients": [{"phone": "+12345"}]}, "recipients.0.phone"),
    ("phone with a 0 country", {"recipients": [{"phone": "+0511999990001"}]}, "recipients.0.phone"),
    ("phone with letters", {"recipients": [{"phone": "+55119999x0001"}]}, "recipients.0.phone"),
    ("phone and a newline", {"recipients": [{"phone": "+5511999990001\n"}]}, "recipients.0.phone"),
    (
        "both phone and user_id",
        {"recipients": [{"phone": "+5511999990001", "user_id": "BR.15025763"}]},
        "recipients.0",
    ),
    ("neither phone nor user_id", {"recipients": [{"variables": ["a"]}]}, "recipients.0"),
    ("bad BSUID", {"recipients": [{"user_id": "br.15025763"}]}, "recipients.0.user_id"),
    ("BSUID without dot", {"recipients": [{"user_id": "BR15025763"}]}, "recipients.0.user_id"),
    ("parent BSUID, no id", {"recipients": [{"user_id": "US.ENT."}]}, "recipients.0.user_id"),
    ("parent BSUID, lower", {"recipients": [{"user_id": "US.ent.1.2"}]}, "recipients.0.user_id"),
    (
        "variables of numbers",
        {"recipients": [{"phone": "+5511999990001", "variables": [1]}]},
        "recipients.0.variables",
    ),
    (
        "unknown recipient field",
        {"recipients": [{"phone": "+5511999990001", "x": 1}]},
        "recipients.0.x",
    ),
    ("template without name", {"template": {"language": "en_US"}}, "template.name"),
    ("template without language", {"template": {"name": "hello"}}, "template.language"),
    (
        "template name with spaces",
        {"template": {**TEMPLATE, "name": "Hello World"}},
        "template.name",
    ),
    ("components not a list", {"template": {**TEMPLATE, "components": {}}}, "template.components"),
    ("no template", {"template": ...}, "template"),
    ("no name", {"name": ...}, "name"),
    ("empty name", {"name": ""}, "name"),
    ("no instances", {"instance_ids": []}, "instance_ids"),
    ("instance id not a uuid", {"instance_ids": ["abc"]}, "instance_ids.0"),
    ("scheduled_at not a date", {"scheduled_at": "tomorrow"}, "scheduled_at"),
    ("scheduled_at without zone", {"scheduled_at": "2030-01-01T09:00:00"}, "scheduled_at"),
    ("scheduled_at in the past", {"scheduled_at": "2020-01-01T09:00:00Z"}, "scheduled_at"),
    ("recipients not a list", {"recipients": {"phone": "+5511999990001"}}, "recipients"),
    ("unknown field", {"priority": "high"}, "priority"),
    ("name not a string", {"name": 7}, "name"),
    (
        "NUL in a variable",
        {"recipients": [{"phone": "+5511999990001", "variables": ["a\x00"]}]},
        "recipients.0.variables.0",
    ),
]


@pytest.mark.parametrize(("case", "changes", "where"), INVALID, ids=[c[0] for c in INVALID])
async def test_every_invalid_campaign_is_a_422_and_changes_nothing(
    api: httpx.AsyncClient,
    store: Store,
    idle_instance: str,
    case: str,
    changes: dict[str, Any],
    where: str,
) -> None:
    name = unique("rejected")
    body = _body(idle_instance, **changes)
    if "name" in body and "name" not in changes:
        body["name"] = name
    error = assert_error(await api.post("/campaigns", json=body), 422, "validation_error")
    locations = [".".join(d["loc"]) for d in error["details"]]
    assert any(loc.startswith(where.rsplit(".", 1)[0]) for loc in locations), locations
    assert await _campaigns_named(store, name) == 0


async def _campaigns_named(store: Store, name: str) -> int:
    count: int = await store.pool.fetchval(
        "SELECT count(*) FROM whatsapp_campaigns WHERE name = $1", name
    )
    return count


async def test_too_many_inline_recipients(
    api: httpx.AsyncClient, store: Store, idle_instance: str
) -> None:
    name = unique("too-many")
    body = _body(idle_instance, name=name, recipients=phones(10_001))
    error = assert_error(await api.post("/campaigns", json=body), 422, "validation_error")
    assert error["details"][0]["loc"] == ["recipients"]
    assert await _campaigns_named(store, name) == 0


async def test_unknown_instance(api: httpx.AsyncClient, store: Store, idle_instance: str) -> None:
    name = unique("orphan")
    ghost = str(uuid.uuid4())
    body = _body(idle_instance, name=name, instance_ids=[idle_instance, ghost])
    error = assert_error(await api.post("/campaigns", json=body), 422, "unknown_instance")
    assert error["details"] == {"instance_ids": [ghost]}
    assert await _campaigns_named(store, name) == 0


@pytest.mark.parametrize("body", [b"{", b"", b"not json", b'{"name": "x",}', b"\xff\xfe"])
async def test_malformed_json_is_a_400(api: httpx.AsyncClient, body: bytes) -> None:
    response = await api.post(
        "/campaigns", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_json")


async def test_a_json_array_is_a_422(api: httpx.AsyncClient) -> None:
    assert_error(await api.post("/campaigns", json=[1, 2]), 422, "validation_error")


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "text/csv"]
)
async def test_wrong_content_type_is_a_415(
    api: httpx.AsyncClient, idle_instance: str, content_type: str | None
) -> None:
    import orjson

    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await api.post(
        "/campaigns", content=orjson.dumps(_body(idle_instance)), headers=headers
    )
    assert_error(response, 415, "unsupported_media_type")


async def test_json_with_a_charset_is_fine(api: httpx.AsyncClient, idle_instance: str) -> None:
    import orjson

    response = await api.post(
        "/campaigns",
        content=orjson.dumps(_body(idle_instance, name=unique("charset"))),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201, response.text


async def test_a_huge_body_is_a_413(api: httpx.AsyncClient) -> None:
    body = b'{"name": "' + b"x" * (9 * 2**20) + b'"}'
    response = await api.post(
        "/campaigns", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")

    async def chunks() -> Any:  # no Content-Length: refused while it streams
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 2**20
        yield b'"}'

    response = await api.post(
        "/campaigns", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


async def test_unknown_and_malformed_campaign_ids(api: httpx.AsyncClient) -> None:
    ghost = uuid.uuid4()
    assert_error(await api.get(f"/campaigns/{ghost}"), 404, "not_found")
    assert_error(await api.post(f"/campaigns/{ghost}/send"), 404, "not_found")
    assert_error(await api.get("/campaigns/12345"), 404)
    assert_error(await api.post("/campaigns/12345/pause"), 404)


async def test_lifecycle_of_a_draft(api: httpx.AsyncClient, idle_instance: str) -> None:
    campaign = await create_campaign(api, [idle_instance], phones(2))
    path = f"/campaigns/{campaign['id']}"
    for action in ("pause", "resume"):
        error = assert_error(await api.post(f"{path}/{action}"), 409, "invalid_transition")
        assert error["details"]["status"] == "draft"
    cancelled = await api.post(f"{path}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    for action in ("send", "pause", "resume", "cancel"):
        error = assert_error(await api.post(f"{path}/{action}"), 409, "invalid_transition")
        assert error["details"]["status"] == "cancelled"


async def test_lifecycle_of_a_running_campaign_held_by_its_portfolio_limit(
    api: httpx.AsyncClient,
) -> None:
    """A new portfolio may reach 250 new recipients a day: of 260, ten wait, so the campaign
    stays running whatever the instance does. Its number is unknown to the sandbox (error 100
    with subcode 33: the number does not exist), so the number stops and its work goes back
    to pending: nobody is failed for it."""
    instance = await register(api, messaging_tier="TIER_250")
    campaign = await create_campaign(api, [instance["id"]], phones(260))
    path = f"/campaigns/{campaign['id']}"
    sent = await api.post(f"{path}/send")
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "running"
    assert sent.json()["started_at"] is not None
    error = assert_error(await api.post(f"{path}/send"), 409, "invalid_transition")
    assert error["details"]["status"] == "running"
    assert_error(await api.post(f"{path}/resume"), 409, "invalid_transition")

    async def stopped() -> dict[str, Any] | None:
        shown: dict[str, Any] = (await api.get(f"/instances/{instance['id']}")).json()
        return shown if shown["status"] == "error" else None

    number = await wait_until(stopped, timeout_s=60)
    assert "does not exist" in number["status_reason"]

    async def given_back() -> dict[str, Any] | None:
        body: dict[str, Any] = (await api.get(path)).json()
        return body if body["pending"] == 260 else None

    settled = await wait_until(given_back, timeout_s=60)
    assert settled["status"] == "running"
    assert settled["total_failed"] == 0
    assert settled["total_sent"] == 0

    paused = await api.post(f"{path}/pause")
    assert paused.json()["status"] == "paused"
    assert_error(await api.post(f"{path}/pause"), 409, "invalid_transition")
    assert_error(await api.post(f"{path}/send"), 409, "invalid_transition")
    resumed = await api.post(f"{path}/resume")
    assert resumed.json()["status"] == "running"
    cancelled = await api.post(f"{path}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    error = assert_error(await api.post(f"{path}/resume"), 409, "invalid_transition")
    assert error["details"] == {"status": "cancelled", "allowed_from": ["held", "paused"]}
