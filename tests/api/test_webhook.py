"""Meta's webhook through the API: the handshake, signatures, and statuses applied in bulk."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest

from dispatcher.meta.callback_tag import CallbackTag
from dispatcher.meta.signature import sign
from tests.api.conftest import PREFIX, assert_error, create_campaign, phones, signed
from tests.stack import APP_SECRET, VERIFY_TOKEN, Stack, wait_until


def status(
    callback: str | None,
    state: str,
    *,
    wamid: str | None = None,
    at: int | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "status": state,
        "timestamp": str(at or int(time.time())),
        "recipient_id": "5511999990001",
    }
    if callback is not None:
        raw["biz_opaque_callback_data"] = callback
    if wamid is not None:
        raw["id"] = wamid
    if errors:
        raw["errors"] = errors
    return raw


def payload(*statuses: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "biz",
                "changes": [
                    {
                        "field": "messages",
                        "value": {"messaging_product": "whatsapp", "statuses": list(statuses)},
                    }
                ],
            }
        ],
    }


async def post(anonymous: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    content, headers = signed(body)
    return await anonymous.post(PREFIX + "/webhook", content=content, headers=headers)


@pytest.mark.parametrize(
    ("params", "status_code"),
    [
        (
            {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "c-123"},
            200,
        ),
        ({"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "c"}, 403),
        ({"hub.mode": "subscribe", "hub.challenge": "c"}, 403),
        ({"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "c"}, 400),
        ({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}, 400),
    ],
)
async def test_verification_handshake(
    anonymous: httpx.AsyncClient, params: dict[str, str], status_code: int
) -> None:
    response = await anonymous.get(PREFIX + "/webhook", params=params)
    assert response.status_code == status_code
    if status_code == 200:
        assert response.text == "c-123"
    else:
        assert_error(response, status_code)


async def _recipient_ids(api: httpx.AsyncClient, campaign_id: str) -> list[int]:
    page = (await api.get(f"/campaigns/{campaign_id}/recipients")).json()
    return [r["id"] for r in page["items"]]


async def _statuses(api: httpx.AsyncClient, campaign_id: str) -> dict[int, dict[str, Any]]:
    page = (await api.get(f"/campaigns/{campaign_id}/recipients")).json()
    return {r["id"]: r for r in page["items"]}


async def test_out_of_order_statuses_end_forward_only_and_counters_follow(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, idle_instance: str, tag: CallbackTag
) -> None:
    campaign = await create_campaign(api, [idle_instance], phones(5))
    a, b, c, d, untouched = await _recipient_ids(api, campaign["id"])
    now = int(time.time())
    failure = [{"code": 131026, "title": "Message undeliverable"}]
    # Each in its own callback, in the "wrong" order: read before delivered, failed after
    # sent, a late sent after failed, sent after delivered. The second round comes after the
    # first is applied, and matches by wamid alone where the first recorded it.
    first = [
        payload(status(tag.make(a), "read", wamid="wamid.A", at=now + 2)),
        payload(status(tag.make(b), "sent", wamid="wamid.B", at=now)),
        payload(status(tag.make(c), "failed", wamid="wamid.C", at=now + 1, errors=failure)),
        payload(
            status(tag.make(d), "delivered", wamid="wamid.D", at=now + 1),
            status(tag.make(d), "sent", at=now),
        ),
    ]
    second = [
        payload(status(None, "delivered", wamid="wamid.A", at=now + 1)),
        payload(status(None, "failed", wamid="wamid.B", at=now + 1, errors=failure)),
        payload(status(tag.make(c), "sent", at=now)),
        payload(status(None, "sent", wamid="wamid.D", at=now)),
    ]
    for round_, expected_failed in ((first, 1), (second, 2)):
        for body in round_:
            response = await post(anonymous, body)
            assert response.status_code == 200, response.text
            assert response.json()["received"] is True

        async def applied(failed: int = expected_failed) -> dict[str, Any] | None:
            shown: dict[str, Any] = (await api.get(f"/campaigns/{campaign['id']}")).json()
            done = shown["total_failed"] == failed and shown["total_delivered"] == 2
            return shown if done else None

        counters = await wait_until(applied, timeout_s=30)

    rows = await _statuses(api, campaign["id"])
    assert rows[a]["status"] == "read"
    assert rows[a]["delivered_at"] is not None
    assert rows[b]["status"] == "failed"
    assert rows[b]["error_code"] == 131026
    assert rows[c]["status"] == "failed"
    assert rows[d]["status"] == "delivered"
    assert rows[untouched]["status"] == "pending"
    assert counters["total_read"] == 1
    assert counters["total_delivered"] == 2  # a read counts as delivered
    assert counters["total_sent"] == 4
    assert counters["pending"] == 1


async def test_tampered_or_unsigned_callbacks_are_refused_and_never_queued(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, idle_instance: str, tag: CallbackTag
) -> None:
    campaign = await create_campaign(api, [idle_instance], phones(2))
    victim, witness = await _recipient_ids(api, campaign["id"])
    content, headers = signed(payload(status(tag.make(victim), "read")))
    tampered = content.replace(b'"read"', b'"sent"')
    url = PREFIX + "/webhook"
    refusals = [
        await anonymous.post(url, content=tampered, headers=headers),
        await anonymous.post(url, content=content, headers={"Content-Type": "application/json"}),
        await anonymous.post(
            url, content=content, headers={**headers, "X-Hub-Signature-256": "sha256=00"}
        ),
        await anonymous.post(
            url,
            content=content,
            headers={**headers, "X-Hub-Signature-256": headers["X-Hub-Signature-256"][7:]},
        ),
        await anonymous.post(url, content=content, headers=signed({}, secret="not-ours")[1]),
    ]
    for response in refusals:
        assert_error(response, 401, "bad_signature")
    # The webhooks stream is FIFO: once a genuine callback sent after them is applied, a
    # queued forgery would have been too.
    assert (
        await post(anonymous, payload(status(tag.make(witness), "delivered")))
    ).status_code == 200

    async def witnessed() -> dict[int, dict[str, Any]] | None:
        rows = await _statuses(api, campaign["id"])
        return rows if rows[witness]["status"] == "delivered" else None

    rows = await wait_until(witnessed, timeout_s=30)
    assert rows[victim]["status"] == "pending"


async def test_signed_bodies_not_metas_shape_get_200_and_are_kept_aside(
    anonymous: httpx.AsyncClient, stack: Stack
) -> None:
    bodies = [b"not json", b"[1, 2]", b'{"object": "page"}', "caf\u00e9 \xff".encode("latin-1")]
    store, queues = await stack.deployment.open(pool_size=1)
    try:
        before = {e.dlq_id for e in await queues.webhooks.stream.dead_letters(count=10_000)}
        for body in bodies:
            response = await anonymous.post(
                PREFIX + "/webhook",
                content=body,
                headers={"X-Hub-Signature-256": sign(APP_SECRET, body)},
            )
            assert response.status_code == 200, response.text
        kept = [
            orjson.loads(e.payload)["unreadable_body"]
            for e in await queues.webhooks.stream.dead_letters(count=10_000)
            if e.dlq_id not in before
        ]
    finally:
        await store.close()
        await queues.client.aclose()
    assert kept == [b.decode("utf-8", "replace") for b in bodies]
    unsigned = await anonymous.post(PREFIX + "/webhook", content=b"not json")
    assert_error(unsigned, 401, "bad_signature")
