from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.api.conftest import assert_error, create_campaign, phones

JSONL = {"Content-Type": "application/x-ndjson"}
CSV = {"Content-Type": "text/csv"}


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(row) for row in rows) + b"\n"


async def _campaign(api: httpx.AsyncClient, instance: str) -> str:
    return str((await create_campaign(api, [instance], phones(1)))["id"])


async def test_append_json_lines(api: httpx.AsyncClient, idle_instance: str) -> None:
    campaign = await _campaign(api, idle_instance)
    rows = [
        {"phone": "+5511988880001", "variables": {"name": "Ana"}},
        {"user_id": "BR.1502576394655843"},
        {"phone": "+5511988880002", "variables": ["1", "2"]},
    ]
    body = jsonl(rows).replace(b"\n", b"\r\n\n", 1)  # CRLF and blank lines are fine
    response = await api.post(f"/campaigns/{campaign}/recipients", content=body, headers=JSONL)
    assert response.status_code == 200, response.text
    assert response.json() == {"added": 3, "duplicates": 0, "invalid": 0, "total_recipients": 4}
    page = (await api.get(f"/campaigns/{campaign}/recipients")).json()["items"]
    assert [r["variables"] for r in page[1:]] == [{"name": "Ana"}, None, ["1", "2"]]
    assert page[2]["user_id"] == "BR.1502576394655843"


async def test_append_csv_with_named_variables(api: httpx.AsyncClient, idle_instance: str) -> None:
    campaign = await _campaign(api, idle_instance)
    body = (
        "\ufeffphone,user_id,name,code\r\n"
        "+5511977770001,,Ana,A1\r\n"
        ',BR.77,"Silva, Bruno",B2\r\n'
        "\r\n"
        "+5511977770003,,,\r\n"
    ).encode()
    response = await api.post(
        f"/campaigns/{campaign}/recipients",
        content=body,
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["added"] == 3
    page = (await api.get(f"/campaigns/{campaign}/recipients", params={"after": 0})).json()
    added = page["items"][1:]
    assert [(r["phone"], r["user_id"]) for r in added] == [
        ("+5511977770001", None),
        (None, "BR.77"),
        ("+5511977770003", None),
    ]
    assert added[1]["variables"] == {"name": "Silva, Bruno", "code": "B2"}


async def test_a_large_upload_streams(api: httpx.AsyncClient, idle_instance: str) -> None:
    campaign = await _campaign(api, idle_instance)
    count = 20_000

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, count, 1_000):
            yield jsonl([{"phone": f"+55219{i:08d}"} for i in range(start, start + 1_000)])

    response = await api.post(f"/campaigns/{campaign}/recipients", content=body(), headers=JSONL)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "added": count,
        "duplicates": 0,
        "invalid": 0,
        "total_recipients": count + 1,
    }


BAD: list[tuple[str, dict[str, str], bytes, int]] = [
    ("bad phone", JSONL, jsonl([{"phone": "+5511900000001"}, {"phone": "+55"}]), 2),
    ("not JSON", JSONL, b'{"phone": "+5511900000001"}\n{"phone": \n', 2),
    ("not an object", JSONL, b'{"phone": "+5511900000001"}\n\n["+5511900000002"]\n', 3),
    ("both addresses", JSONL, jsonl([{"phone": "+5511900000001", "user_id": "BR.1"}]), 1),
    ("unknown field", JSONL, jsonl([{"phone": "+5511900000001", "nick": "x"}]), 1),
    ("not UTF-8", JSONL, b'{"phone": "+5511900000001"}\n\xff\xfe\n', 2),
    ("NUL", JSONL, b'{"phone": "+5511900000001", "variables": ["\\u0000"]}\n', 1),
    ("no address column", CSV, b"name,code\nAna,1\n", 1),
    ("repeated column", CSV, b"phone,phone\n+5511900000001,+5511900000002\n", 1),
    ("cells missing", CSV, b"phone,name\n+5511900000001,Ana\n+5511900000002\n", 3),
    ("bad BSUID", CSV, b"user_id\nBR.1\nbr.2\n", 3),
    ("line too long", JSONL, b'{"phone": "+5511900000001"}\n' + b"x" * 70_000, 2),
]


@pytest.mark.parametrize(("case", "headers", "body", "line"), BAD, ids=[b[0] for b in BAD])
async def test_a_bad_line_rejects_the_whole_upload(
    api: httpx.AsyncClient,
    idle_instance: str,
    case: str,
    headers: dict[str, str],
    body: bytes,
    line: int,
) -> None:
    campaign = await _campaign(api, idle_instance)
    response = await api.post(f"/campaigns/{campaign}/recipients", content=body, headers=headers)
    error = assert_error(response, 422, "invalid_line")
    assert error["details"]["line"] == line
    assert error["message"].startswith(f"line {line}: ")
    shown = (await api.get(f"/campaigns/{campaign}")).json()
    assert shown["total_recipients"] == 1


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
async def test_other_formats_are_a_415(
    api: httpx.AsyncClient, idle_instance: str, content_type: str | None
) -> None:
    campaign = await _campaign(api, idle_instance)
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await api.post(
        f"/campaigns/{campaign}/recipients", content=b'{"phone": "+5511900000001"}', headers=headers
    )
    assert_error(response, 415, "unsupported_media_type")


async def test_a_finished_campaign_takes_no_recipients(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    campaign = await _campaign(api, idle_instance)
    await api.post(f"/campaigns/{campaign}/cancel")
    response = await api.post(
        f"/campaigns/{campaign}/recipients", content=jsonl(phones(1)), headers=JSONL
    )
    assert_error(response, 409, "campaign_finished")
    unknown = "/campaigns/5d0f5c2e-7d5a-4c38-9d43-3f1a3c0e2b11/recipients"
    assert_error(await api.post(unknown, content=jsonl(phones(1)), headers=JSONL), 404)


async def test_pages_with_a_status_filter(api: httpx.AsyncClient, idle_instance: str) -> None:
    campaign = await create_campaign(api, [idle_instance], phones(5))
    path = f"/campaigns/{campaign['id']}/recipients"
    first = (await api.get(path, params={"limit": 2})).json()
    assert len(first["items"]) == 2
    second = (await api.get(path, params={"limit": 2, "after": first["next_after"]})).json()
    third = (await api.get(path, params={"limit": 2, "after": second["next_after"]})).json()
    assert len(third["items"]) == 1
    assert third["next_after"] is None
    ids = [r["id"] for page in (first, second, third) for r in page["items"]]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    pending = (await api.get(path, params={"status": "pending"})).json()["items"]
    assert len(pending) == 5
    assert (await api.get(path, params={"status": "read"})).json()["items"] == []


@pytest.mark.parametrize(
    "params", [{"status": "lost"}, {"limit": 0}, {"limit": 1001}, {"after": -1}, {"after": "x"}]
)
async def test_bad_page_parameters_are_a_422(
    api: httpx.AsyncClient, idle_instance: str, params: dict[str, Any]
) -> None:
    campaign = await _campaign(api, idle_instance)
    response = await api.get(f"/campaigns/{campaign}/recipients", params=params)
    assert_error(response, 422, "validation_error")
