"""Upload and registration limits over real HTTP: 4xx JSON naming the limit, nothing recorded,
and a stalled client holds no Postgres transaction and is cut at the time limit.

A second API server over the session's stack runs with small limits (the stack's own keeps
the defaults, which the other API tests stay well within)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from api.app import create_app
from api.server import ApiServer
from dispatcher.sandbox.server import free_port
from dispatcher.store import Store
from tests.api.conftest import PREFIX, TEMPLATE, assert_error, phones, unique
from tests.stack import API_TOKEN, Stack

MAX_ROWS = 5
MAX_BYTES = 2_048
MAX_S = 2.0
JSONL = {"Content-Type": "application/x-ndjson"}


@pytest.fixture(scope="module")
def limited_server(stack: Stack, idle_instance: str) -> Iterator[ApiServer]:
    """Its cap of one number is already reached: ``idle_instance`` is registered."""
    settings = stack.settings.model_copy(
        update={
            "max_upload_rows": MAX_ROWS,
            "max_upload_bytes": MAX_BYTES,
            "max_upload_s": MAX_S,
            "max_instances": 1,
        }
    )
    server = ApiServer(create_app(settings, stack.deployment, stack.coordinator), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def limited(limited_server: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=limited_server.url + PREFIX,
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=60,
    ) as client:
        yield client


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


async def _campaign(api: httpx.AsyncClient, instance: str, recipients: int = 2) -> dict[str, Any]:
    body = {
        "name": unique("limits"),
        "instance_ids": [instance],
        "template": TEMPLATE,
        "recipients": phones(recipients),
    }
    response = await api.post("/campaigns", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _unchanged(api: httpx.AsyncClient, campaign: dict[str, Any]) -> None:
    now = (await api.get(f"/campaigns/{campaign['id']}")).json()
    assert (now["total_recipients"], now["pending"]) == (
        campaign["total_recipients"],
        campaign["pending"],
    )


def _names_the_limit(error: dict[str, Any], limit: str, maximum: float) -> None:
    assert error["details"] == {
        "limit": limit,
        "setting": f"DISPATCHER_{limit.upper()}",
        "maximum": maximum,
    }
    assert f"DISPATCHER_{limit.upper()}" in error["message"]


async def test_an_append_past_the_row_limit_is_413_and_records_nothing(
    limited: httpx.AsyncClient, idle_instance: str
) -> None:
    campaign = await _campaign(limited, idle_instance)
    body = jsonl(phones(MAX_ROWS + 1, start=100))
    response = await limited.post(
        f"/campaigns/{campaign['id']}/recipients", content=body, headers=JSONL
    )
    _names_the_limit(assert_error(response, 413, "upload_too_large"), "max_upload_rows", MAX_ROWS)
    await _unchanged(limited, campaign)
    exactly = jsonl(phones(MAX_ROWS, start=100))
    response = await limited.post(
        f"/campaigns/{campaign['id']}/recipients", content=exactly, headers=JSONL
    )
    assert response.status_code == 200, response.text


async def test_an_append_past_the_byte_limit_is_413_and_records_nothing(
    limited: httpx.AsyncClient, idle_instance: str
) -> None:
    campaign = await _campaign(limited, idle_instance)
    rows = [{**row, "variables": {"note": "x" * 600}} for row in phones(4, start=200)]
    body = jsonl(rows)
    assert len(body) > MAX_BYTES

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for line in body.splitlines(keepends=True):
            yield line

    for content in (body, streamed()):
        response = await limited.post(
            f"/campaigns/{campaign['id']}/recipients", content=content, headers=JSONL
        )
        error = assert_error(response, 413, "upload_too_large")
        _names_the_limit(error, "max_upload_bytes", MAX_BYTES)
        await _unchanged(limited, campaign)


async def test_a_create_past_the_row_limit_is_413_and_leaves_no_campaign(
    limited: httpx.AsyncClient, idle_instance: str, store: Store
) -> None:
    name = unique("too-many")
    body = {
        "name": name,
        "instance_ids": [idle_instance],
        "template": TEMPLATE,
        "recipients": phones(MAX_ROWS + 1),
    }
    response = await limited.post("/campaigns", json=body)
    _names_the_limit(assert_error(response, 413, "upload_too_large"), "max_upload_rows", MAX_ROWS)
    assert (
        await store.pool.fetchval("SELECT count(*) FROM whatsapp_campaigns WHERE name = $1", name)
        == 0
    )


async def _open_transactions(store: Store, begun_before: Any) -> list[dict[str, Any]]:
    """Client sessions on our database with a transaction begun before ``begun_before``
    (still open), or idle inside one."""
    rows = await store.pool.fetch(
        """
        SELECT pid, state, xact_start, left(query, 120) AS query FROM pg_stat_activity
        WHERE datname = current_database() AND backend_type = 'client backend'
          AND pid <> pg_backend_pid()
          AND (state LIKE 'idle in transaction%' OR xact_start < $1)
        """,
        begun_before,
    )
    return [dict(row) for row in rows]


async def test_a_stalled_upload_holds_no_transaction_and_is_cut_at_the_time_limit(
    limited_server: ApiServer, limited: httpx.AsyncClient, idle_instance: str, store: Store
) -> None:
    campaign = await _campaign(limited, idle_instance)
    part = jsonl(phones(2, start=300))
    reader, writer = await asyncio.open_connection("127.0.0.1", limited_server.port)
    try:
        writer.write(
            (
                f"POST {PREFIX}/campaigns/{campaign['id']}/recipients HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nAuthorization: Bearer {API_TOKEN}\r\n"
                f"Content-Type: application/x-ndjson\r\nContent-Length: {MAX_BYTES}\r\n\r\n"
            ).encode()
            + part
        )
        await writer.drain()
        await asyncio.sleep(0.5)  # the server has read the headers and the first lines
        stalled_at = await store.pool.fetchval("SELECT clock_timestamp()")
        await asyncio.sleep(MAX_S / 2)
        assert await _open_transactions(store, stalled_at) == []
        # The server answers at its time limit and closes the connection.
        answer = await asyncio.wait_for(reader.read(), timeout=60)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert b"connection: close" in head.lower()
    error = orjson.loads(body)["error"]
    assert error["code"] == "upload_timeout"
    _names_the_limit(error, "max_upload_s", MAX_S)
    await _unchanged(limited, campaign)


async def test_registering_past_the_instance_cap_is_409_and_adds_nothing(
    limited: httpx.AsyncClient, idle_instance: str, store: Store
) -> None:
    phone_number_id = unique("capped")
    body = {
        "phone_number_id": phone_number_id,
        "access_token": unique("token"),
        "business_id": unique("biz"),
        "throughput_mps": 1000,
    }
    error = assert_error(await limited.post("/instances", json=body), 409, "instance_limit")
    assert error["details"] == {"setting": "DISPATCHER_MAX_INSTANCES", "maximum": 1}
    assert await store.instances.get_by_phone_number_id(phone_number_id) is None
    # A number already registered may still be updated (a new token) at the cap.
    known = (await limited.get(f"/instances/{idle_instance}")).json()
    again = {
        **body,
        "phone_number_id": known["phone_number_id"],
        "business_id": known["business_id"],
    }
    response = await limited.post("/instances", json=again)
    assert response.status_code == 201, response.text
    assert response.json()["id"] == idle_instance
