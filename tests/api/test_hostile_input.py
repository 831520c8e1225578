"""Hostile bodies and parameters over real HTTP: each is a 4xx naming the field, and nothing
is created. Found by testing (issue 12): dates and integers past what Postgres or orjson take,
components nested hundreds of levels deep or megabytes long, bodies deeper than the stack."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from dispatcher.meta.components import MAX_COMPONENTS_BYTES
from dispatcher.scheduling import MAX_SCHEDULE_AHEAD
from dispatcher.store import Store
from tests.api.conftest import TEMPLATE, assert_error, create_campaign, phones, register, unique

JSON = {"Content-Type": "application/json"}


async def _campaigns(store: Store) -> int:
    count: int = await store.pool.fetchval("SELECT count(*) FROM whatsapp_campaigns")
    return count


def _campaign(instance: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": unique("hostile"),
        "instance_ids": [instance],
        "template": TEMPLATE,
        "recipients": phones(1),
        **changes,
    }


async def _refused(
    api: httpx.AsyncClient, store: Store, content: bytes, status: int, where: str | None = None
) -> dict[str, Any]:
    """POST /campaigns answers ``status`` with the contract's error, naming ``where``, and
    no campaign is created."""
    before = await _campaigns(store)
    error = assert_error(await api.post("/campaigns", content=content, headers=JSON), status)
    if where is not None:
        assert error["message"].startswith(where), error["message"]
        assert any(".".join(d["loc"]).startswith(where) for d in error["details"]), error
    assert await _campaigns(store) == before
    return error


def _dumps(body: Any) -> bytes:
    # The standard library: orjson refuses to write what these tests must send.
    return json.dumps(body).encode()


FAR = [
    ("9999-12-31 with a zone (past year 9999 in UTC)", "9999-12-31T23:00:00-05:00"),
    ("9999-12-31 in UTC", "9999-12-31T00:00:00Z"),
    ("just over the horizon", None),
    ("year 1 with a zone", "0001-01-01T00:00:00+05:00"),
    ("naive", "2030-01-01T09:00:00"),
]


@pytest.mark.parametrize(("case", "when"), FAR, ids=[c[0] for c in FAR])
async def test_a_scheduled_at_out_of_range_is_a_422(
    api: httpx.AsyncClient, store: Store, idle_instance: str, case: str, when: str | None
) -> None:
    if when is None:
        when = (datetime.now(UTC) + MAX_SCHEDULE_AHEAD + timedelta(hours=1)).isoformat()
    body = _campaign(idle_instance, scheduled_at=when)
    await _refused(api, store, _dumps(body), 422, "scheduled_at")


async def test_a_scheduled_at_is_kept_in_utc_and_a_few_seconds_late_is_fine(
    api: httpx.AsyncClient,
) -> None:
    # An instance of its own: the late campaign may start at once (and stop its number).
    instance = (await register(api))["id"]
    zone = timezone(timedelta(hours=5, minutes=30))
    when = (datetime.now(UTC) + MAX_SCHEDULE_AHEAD - timedelta(days=1)).astimezone(zone)
    far = await create_campaign(api, [instance], phones(1), scheduled_at=when.isoformat())
    stored = datetime.fromisoformat(far["scheduled_at"])
    assert stored == when
    assert stored.utcoffset() == timedelta(0)
    late = datetime.now(UTC) - timedelta(seconds=20)
    soon = await create_campaign(api, [instance], phones(1), scheduled_at=late.isoformat())
    assert soon["status"] == "scheduled"
    for campaign in (far, soon):
        assert (await api.post(f"/campaigns/{campaign['id']}/cancel")).status_code == 200


def _nested(levels: int) -> dict[str, Any]:
    """A component whose parameter is a component... ``levels`` JSON levels deep."""
    value: dict[str, Any] = {"type": "text", "text": "x"}
    for _ in range(levels // 2):
        value = {"type": "body", "parameters": [value]}
    return value


@pytest.mark.parametrize("levels", [6, 500])
async def test_components_nested_deeply_are_a_422(
    api: httpx.AsyncClient, store: Store, idle_instance: str, levels: int
) -> None:
    body = _campaign(idle_instance, template={**TEMPLATE, "components": [_nested(levels)]})
    await _refused(api, store, _dumps(body), 422, "template.components.0.parameters.0")


async def test_a_two_mebibyte_components_list_is_a_422(
    api: httpx.AsyncClient, store: Store, idle_instance: str
) -> None:
    component = {"type": "body", "parameters": [{"type": "text", "text": "x"}]}
    body = _campaign(idle_instance, template={**TEMPLATE, "components": [component] * 40_000})
    content = _dumps(body)
    assert len(content) > 2 * 2**20
    await _refused(api, store, content, 422, "template.components")


async def test_components_within_every_count_but_too_large_are_a_422(
    api: httpx.AsyncClient, store: Store, idle_instance: str
) -> None:
    text = {"type": "text", "text": "x" * 30_000}
    components = [{"type": "body", "parameters": [text] * 20}]
    assert len(_dumps(components)) > MAX_COMPONENTS_BYTES
    body = _campaign(idle_instance, template={**TEMPLATE, "components": components})
    error = await _refused(api, store, _dumps(body), 422, "template.components")
    assert str(MAX_COMPONENTS_BYTES) in error["message"]


async def test_components_of_meta_s_schema_are_stored_as_given(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    components = [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x/a.png"}}]},
        {"type": "BODY", "parameters": [{"type": "text", "text": "Olá {{name}}"}]},
        {
            "type": "button",
            "sub_type": "copy_code",
            "index": 0,
            "parameters": [{"type": "coupon_code", "coupon_code": "SAVE25"}],
        },
    ]
    template = {**TEMPLATE, "components": components}
    campaign = await create_campaign(api, [idle_instance], phones(1), template=template)
    assert campaign["template"]["components"] == [
        components[0],
        {"type": "body", "parameters": [{"type": "text", "text": "Olá {{name}}"}]},
        components[2],
    ]


BAD_COMPONENTS = [
    ("unknown type", [{"type": "sticker"}], "template.components.0.type"),
    ("button without index", [{"type": "button", "sub_type": "url"}], "template.components.0"),
    (
        "parameter of another type",
        [{"type": "body", "parameters": [{"type": "image", "text": "x"}]}],
        "template.components.0.parameters.0",
    ),
]


@pytest.mark.parametrize(
    ("case", "components", "where"), BAD_COMPONENTS, ids=[c[0] for c in BAD_COMPONENTS]
)
async def test_components_off_meta_s_schema_are_a_422(
    api: httpx.AsyncClient,
    store: Store,
    idle_instance: str,
    case: str,
    components: list[Any],
    where: str,
) -> None:
    body = _campaign(idle_instance, template={**TEMPLATE, "components": components})
    await _refused(api, store, _dumps(body), 422, where)


@pytest.mark.parametrize("depth", [40, 1_000, 1_020, 10_000])
async def test_a_body_nested_deeper_than_the_stack_is_a_4xx(
    api: httpx.AsyncClient, store: Store, depth: int
) -> None:
    """orjson refuses past 1,024 levels (400); below that the API refuses past 32 (422)
    before any recursive walk, pydantic or Postgres sees it."""
    content = b'{"name": ' + b"[" * depth + b"]" * depth + b"}"
    await _refused(api, store, content, 400 if depth > 1_024 else 422)


async def test_a_recipient_line_nested_deeply_is_a_4xx(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    campaign = await create_campaign(api, [idle_instance], phones(1))
    line = b'{"phone": "+5511999990001", "variables": ' + b"[" * 1_000 + b"]" * 1_000 + b"}\n"
    response = await api.post(
        f"/campaigns/{campaign['id']}/recipients",
        content=line,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert 400 <= response.status_code < 500, response.text
    shown = (await api.get(f"/campaigns/{campaign['id']}")).json()
    assert shown["total_recipients"] == 1


HUGE = [2**63, 2**64, 10**30, -(2**63) - 1]


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("field", ["throughput_mps", "messaging_tier"])
async def test_huge_integers_in_a_registration_are_a_422(
    api: httpx.AsyncClient, field: str, value: int
) -> None:
    business = unique("biz-huge")
    body = {
        "phone_number_id": unique("huge"),
        "access_token": "t",
        "business_id": business,
        field: value,
    }
    error = assert_error(await api.post("/instances", content=_dumps(body), headers=JSON), 422)
    assert error["details"][0]["loc"][0] == field
    listed = await api.get("/instances", params={"business_id": business})
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/campaigns/{id}/recipients", {"after": str(2**63)}),
        ("/campaigns/{id}/recipients", {"after": str(10**30)}),
        ("/campaigns/{id}/recipients", {"limit": str(2**64)}),
        ("/campaigns/{id}/recipients", {"after": "-1"}),
        ("/suppressions", {"offset": str(2**63)}),
        ("/suppressions", {"limit": str(10**30)}),
    ],
)
async def test_huge_page_parameters_are_a_422(
    api: httpx.AsyncClient, idle_instance: str, path: str, params: dict[str, str]
) -> None:
    campaign = await create_campaign(api, [idle_instance], phones(1))
    response = await api.get(path.format(id=campaign["id"]), params=params)
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["loc"] == [*params]
    assert error["message"].startswith(f"query {next(iter(params))}")


@pytest.mark.parametrize(
    "job_id", ["18446744073709551616-0", "0-18446744073709551616", "99999999999999999999-1"]
)
async def test_a_job_id_past_64_bits_is_a_422(api: httpx.AsyncClient, job_id: str) -> None:
    response = await api.post(
        "/queue/stats", json={"action": "retry_dlq", "queue": "campaigns", "jobId": job_id}
    )
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["jobId"]
