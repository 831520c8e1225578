"""``POST /suppressions/import`` over real HTTP: a CSV list imported whole, counted; a bad
line refuses it whole (nothing applied); limits and bad parameters are 4xx naming them."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import assert_error, unique
from tests.api.test_limits import MAX_ROWS, limited, limited_server  # noqa: F401 (fixtures)

CSV = {"Content-Type": "text/csv"}
IMPOSSIBLE = "+5510987654321"  # Brazil has no area code 10


async def listed(api: httpx.AsyncClient, business: str) -> dict[str, tuple[str, str]]:
    rows = (await api.get("/suppressions", params={"business_id": business})).json()
    return {r["address"]: (r["reason"], r["source"]) for r in rows["suppressions"]}


async def send(api: httpx.AsyncClient, business: str, body: bytes) -> httpx.Response:
    return await api.post(
        "/suppressions/import", params={"business_id": business}, content=body, headers=CSV
    )


async def test_a_csv_list_is_imported_and_counted(api: httpx.AsyncClient) -> None:
    business = unique("biz")
    before = await api.post(
        "/suppressions", json={"business_id": business, "addresses": ["+5511999990002"]}
    )
    assert before.status_code == 200, before.text
    body = (
        "phone,reason\n"
        "+5511999990001,asked by phone\n"
        "\n"
        "+5511999990002\n"  # suppressed before
        '"BR.1502576394655843","wrote ""stop"", twice"\n'
        f"{IMPOSSIBLE},old list\n"
        "+5511999990001,again\n"  # repeated: the first reason stays
    )
    answer = await send(api, business, body.encode())
    assert answer.status_code == 200, answer.text
    expected: dict[str, Any] = {
        "business_id": business,
        "rows": 5,
        "added": 3,
        "already_suppressed": 1,
        "repeated": 1,
        "invalid": 1,
        "invalid_lines": [{"line": 6, "address": IMPOSSIBLE}],
    }
    assert answer.json() == expected
    assert await listed(api, business) == {
        "+5511999990001": ("asked by phone", "import"),
        "+5511999990002": ("operator", "operator"),
        "BR.1502576394655843": ('wrote "stop", twice', "import"),
        IMPOSSIBLE: ("old list", "import"),  # an opt-out is never dropped
    }
    again = await send(api, business, b"+5511999990001\n")  # no header, idempotent
    assert again.json()["added"] == 0
    assert again.json()["already_suppressed"] == 1


async def test_a_bad_line_refuses_the_whole_list(api: httpx.AsyncClient) -> None:
    business = unique("biz")
    body = b"address\n+5511999990001\n+5511999990003\nnot a phone\n+5511999990004\n"
    error = assert_error(await send(api, business, body), 422, "invalid_line")
    assert error["details"] == {
        "line": 4,
        "problem": "'not a phone' is neither an E.164 phone (+ and 7-15 digits) nor a BSUID",
    }
    assert "line 4" in error["message"]
    three_cells = await send(api, business, b"+5511999990001,a,b\n")
    assert assert_error(three_cells, 422, "invalid_line")["details"]["line"] == 1
    long_reason = await send(api, business, b"+5511999990001," + b"x" * 301 + b"\n")
    assert assert_error(long_reason, 422, "invalid_line")["details"]["line"] == 1
    assert await listed(api, business) == {}


async def test_bad_parameters_and_media_types_are_refused(api: httpx.AsyncClient) -> None:
    missing = await api.post("/suppressions/import", content=b"+5511999990001\n", headers=CSV)
    error = assert_error(missing, 422)
    assert "business_id" in error["message"]
    too_long = await send(api, "b" * 129, b"+5511999990001\n")
    assert "business_id" in assert_error(too_long, 422)["message"]
    json_body = await api.post(
        "/suppressions/import", params={"business_id": "b"}, json=["+5511999990001"]
    )
    assert_error(json_body, 415, "unsupported_media_type")


async def test_a_list_past_the_row_limit_is_refused_whole(
    limited: httpx.AsyncClient,  # noqa: F811
    api: httpx.AsyncClient,
) -> None:
    business = unique("biz")
    rows = "".join(f"+55119{i:08d}\n" for i in range(MAX_ROWS + 1))
    error = assert_error(await send(limited, business, rows.encode()), 413, "upload_too_large")
    assert error["details"]["setting"] == "DISPATCHER_MAX_UPLOAD_ROWS"
    assert await listed(api, business) == {}
