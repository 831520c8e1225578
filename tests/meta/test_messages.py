from __future__ import annotations

import orjson
import pytest

from dispatcher.meta.error_codes import ErrorClass, ErrorTable
from dispatcher.meta.messages import (
    MetaError,
    SendOk,
    Template,
    parse_send_response,
    template_body,
)

PROMO = Template(
    "campaign_promo",
    "pt_BR",
    [{"type": "body", "parameters": [{"type": "text", "text": "Olá {{name}}, {{offer}}"}]}],
)


def test_list_variables_fill_the_body_parameters_in_order():
    body = orjson.loads(template_body("+5511999990001", Template("t", "en"), ["Ana", "10%"]))
    assert body["to"] == "+5511999990001"
    assert body["template"]["components"] == [
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "10%"}],
        }
    ]


def test_mapping_variables_replace_named_placeholders():
    body = orjson.loads(
        template_body("+5511999990001", PROMO, {"name": "Ana", "offer": "10% off"}, "r-7")
    )
    assert body["template"]["components"][0]["parameters"][0]["text"] == "Olá Ana, 10% off"
    assert body["biz_opaque_callback_data"] == "r-7"
    assert PROMO.components[0]["parameters"][0]["text"] == "Olá {{name}}, {{offer}}"


def test_a_bsuid_goes_in_recipient_not_to():
    body = orjson.loads(template_body("BR.1502576394655843", Template("t", "en")))
    assert body["recipient"] == "BR.1502576394655843"
    assert "to" not in body
    assert "components" not in body["template"]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"messages": []}', ErrorClass.TRANSIENT),
        (200, b"not json", ErrorClass.TRANSIENT),
        (502, b"<html>bad gateway</html>", ErrorClass.TRANSIENT),
        (400, b'{"error": {"code": "131026", "message": "x"}}', ErrorClass.PERMANENT_MESSAGE),
    ],
)
def test_odd_answers_become_classified_errors(status, body, expected):
    result = parse_send_response(status, body, ErrorTable())
    assert isinstance(result, MetaError)
    assert result.error_class is expected


def test_a_success_carries_the_wamid():
    answer = b'{"messaging_product":"whatsapp","messages":[{"id":"wamid.X"}]}'
    assert parse_send_response(200, answer, ErrorTable()) == SendOk("wamid.X")


def test_named_variables_fill_a_named_template_with_parameter_names():
    template = Template(
        "order_update",
        "en_US",
        [
            {"type": "HEADER", "parameters": [{"type": "text", "text": "Order"}]},
            {
                "type": "Body",
                "parameters": [
                    {"type": "text", "parameter_name": "first_name", "text": ""},
                    {
                        "type": "currency",
                        "currency": {"fallback_value": "$10", "code": "USD", "amount_1000": 10000},
                    },
                    {"type": "date_time", "date_time": {"fallback_value": "May 1"}},
                ],
            },
        ],
    )
    body = orjson.loads(
        template_body("+5511999990001", template, {"first_name": "Ana", "order": "A-7"})
    )
    header, main = body["template"]["components"]
    assert header == template.components[0]
    assert main["type"] == "body"
    assert main["parameters"] == [
        {"type": "text", "parameter_name": "first_name", "text": "Ana"},
        template.components[1]["parameters"][1],
        template.components[1]["parameters"][2],
        {"type": "text", "parameter_name": "order", "text": "A-7"},
    ]


def test_named_variables_without_body_components_become_named_parameters():
    body = orjson.loads(template_body("+5511999990001", Template("t", "en"), {"name": "Ana"}))
    assert body["template"]["components"] == [
        {"type": "body", "parameters": [{"type": "text", "parameter_name": "name", "text": "Ana"}]}
    ]


def test_positional_variables_keep_other_body_parameter_types_in_place():
    currency = {"type": "currency", "currency": {"fallback_value": "$1", "code": "USD"}}
    template = Template(
        "t", "en", [{"type": "BODY", "parameters": [{"type": "text", "text": "x"}, currency]}]
    )
    body = orjson.loads(template_body("+5511999990001", template, ["Ana", "10%"]))
    assert body["template"]["components"] == [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "Ana"},
                currency,
                {"type": "text", "text": "10%"},
            ],
        }
    ]
    assert all("parameter_name" not in p for p in body["template"]["components"][0]["parameters"])


@pytest.mark.parametrize("parent", ["US.ENT.11815799212886844830", "BR.ENT.abc123"])
def test_a_parent_bsuid_goes_in_recipient(parent):
    body = orjson.loads(template_body(parent, Template("t", "en")))
    assert body["recipient"] == parent
    assert "to" not in body


@pytest.mark.parametrize("bad", ["US.ENT.", "US.ENT.a.b", "us.ENT.1", "US.ent.1x.y"])
def test_malformed_bsuids_go_nowhere_as_recipient(bad):
    body = orjson.loads(template_body(bad, Template("t", "en")))
    assert "recipient" not in body
