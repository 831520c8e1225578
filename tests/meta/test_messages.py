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
