"""``GET /campaigns``: newest first, keyset pages, a filter of one status or several, 422 for
bad parameters."""

from __future__ import annotations

import uuid

import httpx

from tests.api.conftest import assert_error, create_campaign, phones


async def test_pages_are_newest_first_and_follow_next_after(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    made = [(await create_campaign(api, [idle_instance], phones(1)))["id"] for _ in range(3)]
    first = (await api.get("/campaigns", params={"limit": 2})).json()
    assert len(first["items"]) == 2
    assert first["next_after"] == first["items"][-1]["id"]
    second = (await api.get("/campaigns", params={"limit": 2, "after": first["next_after"]})).json()
    items = first["items"] + second["items"]
    ids = [item["id"] for item in items]
    assert len(set(ids)) == len(ids), "no campaign on two pages"
    # Tests run one at a time: the three just made are the newest of the database.
    assert set(ids[:3]) == set(made)
    created = [item["created_at"] for item in items]
    assert created == sorted(created, reverse=True)
    assert {"total_sent", "total_delivered", "total_read", "total_duplicates"} <= set(items[0])


async def test_the_last_page_has_no_next_after(api: httpx.AsyncClient, idle_instance: str) -> None:
    oldest = None
    page = (await api.get("/campaigns", params={"limit": 1000})).json()
    while page["next_after"] is not None:  # the session's database: a few pages at most
        page = (
            await api.get("/campaigns", params={"limit": 1000, "after": page["next_after"]})
        ).json()
    oldest = page["items"][-1]["id"]
    after_oldest = (await api.get("/campaigns", params={"after": oldest})).json()
    assert after_oldest == {"items": [], "next_after": None}
    unknown = (await api.get("/campaigns", params={"after": str(uuid.uuid4())})).json()
    assert unknown == {"items": [], "next_after": None}


async def test_the_status_filter(api: httpx.AsyncClient, idle_instance: str) -> None:
    kept = await create_campaign(api, [idle_instance], phones(1))
    cancelled = await create_campaign(api, [idle_instance], phones(1))
    assert (await api.post(f"/campaigns/{cancelled['id']}/cancel")).status_code == 200
    page = (await api.get("/campaigns", params={"status": "cancelled", "limit": 1000})).json()
    assert {item["status"] for item in page["items"]} == {"cancelled"}
    ids = {item["id"] for item in page["items"]}
    assert cancelled["id"] in ids
    assert kept["id"] not in ids
    drafts = (await api.get("/campaigns", params={"status": "draft", "limit": 1})).json()
    assert drafts["items"][0]["id"] == kept["id"]


async def test_several_statuses_in_one_call_newest_first(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    draft = await create_campaign(api, [idle_instance], phones(1))
    cancelled = await create_campaign(api, [idle_instance], phones(1))
    assert (await api.post(f"/campaigns/{cancelled['id']}/cancel")).status_code == 200
    both = {"status": "cancelled,draft", "limit": 1000}
    page = (await api.get("/campaigns", params=both)).json()
    assert {item["status"] for item in page["items"]} == {"cancelled", "draft"}
    assert [item["id"] for item in page["items"][:2]] == [cancelled["id"], draft["id"]]
    created = [item["created_at"] for item in page["items"]]
    assert created == sorted(created, reverse=True)
    first = (await api.get("/campaigns", params={**both, "limit": 1})).json()
    assert first["items"][0]["id"] == cancelled["id"]
    after = {**both, "limit": 1, "after": first["next_after"]}
    second = (await api.get("/campaigns", params=after)).json()
    assert second["items"][0]["id"] == draft["id"]
    active = (await api.get("/campaigns", params={"status": "running,held,paused"})).json()
    assert {draft["id"], cancelled["id"]}.isdisjoint(item["id"] for item in active["items"])


async def test_an_unknown_status_among_several_is_422_naming_the_field(
    api: httpx.AsyncClient,
) -> None:
    for status in ("running,sleeping", "running,", "running;held", ""):
        error = assert_error(await api.get("/campaigns", params={"status": status}), 422)
        assert "status" in error["message"], (status, error)
    error = assert_error(await api.get("/campaigns", params={"status": "running,sleeping"}), 422)
    assert "'sleeping'" in error["message"], error


async def test_bad_parameters_are_422(api: httpx.AsyncClient) -> None:
    for params in (
        {"status": "sleeping"},
        {"after": "12"},
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "many"},
    ):
        error = assert_error(await api.get("/campaigns", params=params), 422)
        assert error["details"], params
