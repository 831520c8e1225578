"""``/suppressions`` over real HTTP: add, list, filter, remove; bad input is a 4xx."""

from __future__ import annotations

import httpx

from tests.api.conftest import assert_error, unique


async def test_suppressions_add_list_and_remove(api: httpx.AsyncClient) -> None:
    business = unique("biz")
    addresses = ["+5511999990001", "BR.1502576394655843"]
    response = await api.post(
        "/suppressions", json={"business_id": business, "addresses": addresses, "reason": "asked"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"business_id": business, "changed": 2}
    again = await api.post("/suppressions", json={"business_id": business, "addresses": addresses})
    assert again.json()["changed"] == 0  # idempotent

    listed = (await api.get("/suppressions", params={"business_id": business})).json()
    rows = listed["suppressions"]
    assert sorted(r["address"] for r in rows) == sorted(addresses)
    assert {r["reason"] for r in rows} == {"asked"}
    assert {r["source"] for r in rows} == {"operator"}
    one = await api.get("/suppressions", params={"business_id": business, "address": addresses[0]})
    assert [r["address"] for r in one.json()["suppressions"]] == [addresses[0]]
    other = await api.get("/suppressions", params={"business_id": unique("biz")})
    assert other.json()["suppressions"] == []

    removed = await api.request(
        "DELETE", "/suppressions", json={"business_id": business, "addresses": [addresses[0]]}
    )
    assert removed.status_code == 200, removed.text
    assert removed.json()["changed"] == 1
    left = (await api.get("/suppressions", params={"business_id": business})).json()
    assert [r["address"] for r in left["suppressions"]] == [addresses[1]]


async def test_suppressions_refuse_bad_input(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    assert_error(
        await api.post("/suppressions", json={"business_id": "b", "addresses": ["12345"]}), 422
    )
    assert_error(await api.post("/suppressions", json={"business_id": "b", "addresses": []}), 422)
    json_type = {"Content-Type": "application/json"}
    assert_error(await api.post("/suppressions", content=b"{", headers=json_type), 400)
    assert_error(await api.get("/suppressions", params={"limit": "0"}), 422)
    assert_error(await anonymous.get("/api/whatsapp/suppressions"), 401)


async def test_suppressions_are_in_the_openapi_document(anonymous: httpx.AsyncClient) -> None:
    document = (await anonymous.get("/openapi.json")).json()
    path = document["paths"]["/api/whatsapp/suppressions"]
    assert set(path) == {"get", "post", "delete"}
    assert "requestBody" in path["delete"]
