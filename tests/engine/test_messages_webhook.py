"""The ``messages`` handler in-process: value.errors[] throttle the number they name."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson

from dispatcher.engine.messages_webhook import on_messages
from dispatcher.meta.error_codes import Throttle
from dispatcher.meta.webhooks import changes
from dispatcher.store import Store
from tests.engine.conftest import MakeInstance
from tests.engine.fakes import FakeFleet

FIXTURES = Path(__file__).parents[1] / "meta" / "fixtures"


def _fixture(name: str) -> dict[str, Any]:
    return orjson.loads((FIXTURES / name).read_bytes())


def _with_number(payload: dict[str, Any], phone_number_id: str) -> dict[str, Any]:
    payload = copy.deepcopy(payload)
    for entry in payload["entry"]:
        for change in entry["changes"]:
            change["value"]["metadata"]["phone_number_id"] = phone_number_id
    return payload


async def test_an_asynchronous_130429_throttles_the_number_it_names(
    store: Store, make_instance: MakeInstance
) -> None:
    instance = await make_instance()
    fleet = FakeFleet()
    payload = _with_number(_fixture("value_level_errors_130429.json"), instance.phone_number_id)
    for change in changes(payload):
        await on_messages(store, fleet, change)
    assert fleet.throttled == [(instance.id, Throttle.THROUGHPUT)]


async def test_statuses_inbound_messages_unknown_numbers_and_other_codes_throttle_nothing(
    store: Store, make_instance: MakeInstance
) -> None:
    instance = await make_instance()
    fleet = FakeFleet()
    other_code = _with_number(_fixture("value_level_errors_130429.json"), instance.phone_number_id)
    other_code["entry"][0]["changes"][0]["value"]["errors"][0]["code"] = 131026
    payloads = [
        _fixture("value_level_errors_130429.json"),  # a number that is not ours
        other_code,
        _with_number(_fixture("inbound_text_with_contacts.json"), instance.phone_number_id),
        _with_number(_fixture("status_failed_131026.json"), instance.phone_number_id),
    ]
    for payload in payloads:
        for change in changes(payload):
            await on_messages(store, fleet, change)
    assert fleet.throttled == []
