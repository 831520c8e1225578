"""List hygiene over real HTTP: an append with a phone in no numbering plan is taken, the
phone kept ``invalid`` and counted; a line that is not a phone at all still refuses it."""

from __future__ import annotations

import httpx

from tests.api.conftest import assert_error, create_campaign, phones
from tests.api.test_recipients import JSONL, jsonl

IMPOSSIBLE = "+5510987654321"  # Brazil has no area code 10


async def test_an_impossible_number_is_kept_invalid_and_counted(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    campaign = await create_campaign(api, [idle_instance], phones(1))
    path = f"/campaigns/{campaign['id']}/recipients"
    rows = [*phones(2), {"phone": IMPOSSIBLE}, {"user_id": "BR.hygiene1"}]
    response = await api.post(path, content=jsonl(rows), headers=JSONL)
    assert response.status_code == 200, response.text
    assert response.json() == {"added": 4, "duplicates": 0, "invalid": 1, "total_recipients": 5}
    shown = (await api.get(f"/campaigns/{campaign['id']}")).json()
    assert (shown["total_invalid"], shown["pending"]) == (1, 4)
    listed = (await api.get(path, params={"status": "invalid"})).json()["items"]
    assert [r["phone"] for r in listed] == [IMPOSSIBLE]

    bad = jsonl([*phones(2), {"phone": IMPOSSIBLE}, {"phone": "+55 11 9999"}])
    error = assert_error(await api.post(path, content=bad, headers=JSONL), 422, "invalid_line")
    assert error["details"]["line"] == 4
    assert (await api.get(f"/campaigns/{campaign['id']}")).json()["total_recipients"] == 5
