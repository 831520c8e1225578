"""A batch's send bodies: our tag as callback data, named parameters, parent BSUIDs."""

from __future__ import annotations

import uuid

import orjson

from dispatcher.engine.batch import Batch, BatchItem
from dispatcher.meta.callback_tag import CallbackTag
from dispatcher.meta.messages import Template

TAG = CallbackTag(b"t" * 32)
NAMED = Template(
    "order_update",
    "en_US",
    ({"type": "BODY", "parameters": [{"type": "text", "parameter_name": "first_name"}]},),
)


def _body(address: str, variables) -> dict:
    batch = Batch(uuid.uuid4(), 1, NAMED, [BatchItem(77, address, variables, 0)])
    return orjson.loads(batch.body(batch.items[0], TAG))


def test_the_callback_data_is_our_tag_for_the_recipient():
    body = _body("+5511999990001", None)
    assert body["biz_opaque_callback_data"] != "77"
    assert TAG.recipient_id(body["biz_opaque_callback_data"]) == 77


def test_named_variables_are_sent_with_their_parameter_names():
    body = _body("+5511999990001", {"first_name": "Ana"})
    assert body["template"]["components"] == [
        {
            "type": "body",
            "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ana"}],
        }
    ]


def test_a_parent_bsuid_is_sent_as_recipient():
    body = _body("US.ENT.11815799212886844830", None)
    assert body["recipient"] == "US.ENT.11815799212886844830"
    assert "to" not in body
