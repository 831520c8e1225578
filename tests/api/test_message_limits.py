"""Recipients whose message would break Meta's limits are refused as they come in: a 422
naming the recipient (create) or the line (append), and nothing of the request recorded."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.api.conftest import assert_error, phones, unique

JSONL = {"Content-Type": "application/x-ndjson"}
TEMPLATE = {
    "name": "order_update",
    "language": "en_US",
    "components": [
        {"type": "header", "parameters": [{"type": "text", "text": "{{title}}"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Hi {{name}}, {{offer}}"}]},
    ],
}
FITS = {"title": "t" * 60, "name": "Ana", "offer": "{{title}}"}
"""At the header's limit, and a placeholder in a value: literal text, not a 61st character."""
HEADER_TOO_LONG = {"title": "t" * 61, "name": "Ana", "offer": "10%"}


def _campaign(instance: str, recipients: list[dict[str, Any]], **template: Any) -> dict[str, Any]:
    return {
        "name": unique("limits"),
        "instance_ids": [instance],
        "template": {**TEMPLATE, **template},
        "recipients": recipients,
    }


async def test_create_refuses_the_recipient_whose_message_breaks_a_limit(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    [first, second] = phones(2)
    recipients = [{**first, "variables": FITS}, {**second, "variables": HEADER_TOO_LONG}]
    response = await api.post("/campaigns", json=_campaign(idle_instance, recipients))
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["recipients", "1", "variables"]
    assert error["message"] == (
        "recipients.1.variables: header text parameter 1 is 61 characters, "
        "more than Meta's limit of 60"
    )
    accepted = await api.post("/campaigns", json=_campaign(idle_instance, recipients[:1]))
    assert accepted.status_code == 201, accepted.text


async def test_create_refuses_components_larger_than_any_message(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    button = {"type": "button", "sub_type": "quick_reply", "index": "0"}
    button["parameters"] = [{"type": "payload", "payload": "p" * 1000}]  # type: ignore[assignment]
    response = await api.post(
        "/campaigns", json=_campaign(idle_instance, phones(1), components=[button] * 300)
    )
    error = assert_error(response, 422, "validation_error")
    assert error["message"].startswith("template.components")


async def test_append_refuses_the_line_whose_message_breaks_a_limit(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    created = await api.post("/campaigns", json=_campaign(idle_instance, phones(1)))
    assert created.status_code == 201, created.text
    campaign = created.json()["id"]
    rows = [{**p, "variables": FITS} for p in phones(3)]
    rows[2]["variables"] = {**FITS, "name": "n" * 1000, "offer": "o" * 30}  # 1,035 in the body
    body = b"\n".join(orjson.dumps(r) for r in rows)
    response = await api.post(f"/campaigns/{campaign}/recipients", content=body, headers=JSONL)
    error = assert_error(response, 422, "invalid_line")
    assert error["details"]["line"] == 3
    assert "body text parameter 1 is 1,035 characters" in error["details"]["problem"]
    shown = (await api.get(f"/campaigns/{campaign}")).json()
    assert shown["total_recipients"] == 1  # all or nothing


async def test_append_checks_every_variants_template(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    """Variant 0's template has no header; variant 1's takes the title as one (60 at most):
    a title of 61 breaks variant 1's message, whichever variant the line is assigned (a
    winner's template may go to any row)."""
    plain = {"name": "plain", "language": "en_US", "components": []}
    body = {"name": unique("limits"), "instance_ids": [idle_instance], "recipients": phones(1)}
    body["variants"] = [{"template": plain}, {"template": TEMPLATE}]
    created = await api.post("/campaigns", json=body)
    assert created.status_code == 201, created.text
    lines = [{**phone, "variables": HEADER_TOO_LONG} for phone in phones(1)]
    response = await api.post(
        f"/campaigns/{created.json()['id']}/recipients",
        content=b"\n".join(orjson.dumps(line) for line in lines),
        headers=JSONL,
    )
    error = assert_error(response, 422, "invalid_line")
    assert error["details"] == {
        "line": 1,
        "problem": "variants.1.variables: header text parameter 1 is 61 characters, more "
        "than Meta's limit of 60",
    }
