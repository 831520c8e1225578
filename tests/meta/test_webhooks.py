"""The sandbox's status webhooks: Meta's shape, signed, batched, in order or not."""

from __future__ import annotations

from collections import defaultdict

import orjson

from dispatcher.meta.client import MetaClient
from dispatcher.meta.messages import SendOk, Template
from dispatcher.meta.signature import sign, verify
from dispatcher.sandbox.control import SandboxControl
from tests.meta.conftest import APP_SECRET, UNDELIVERABLE, Received, sandbox_config

HELLO = Template("hello_world", "en_US")


def _statuses(received: Received) -> list[dict]:
    return [
        status
        for body, _ in received.posts
        for entry in orjson.loads(body)["entry"]
        for change in entry["changes"]
        for status in change["value"].get("statuses", [])
    ]


async def _send(client: MetaClient, count: int, start: int = 0) -> dict[str, str]:
    wamids = {}
    for i in range(start, start + count):
        result = await client.send_template(
            "2001", "token-2001", f"+55118{i:08d}", HELLO, None, f"recipient-{i}"
        )
        assert isinstance(result, SendOk)
        wamids[result.wamid] = f"recipient-{i}"
    return wamids


async def test_statuses_arrive_signed_in_metas_shape(
    client: MetaClient, sandbox: SandboxControl, received: tuple[str, Received]
) -> None:
    _, inbox = received
    wamids = await _send(client, 5)
    await inbox.wait_for_statuses(15)  # sent, delivered, read for each (read_ratio=1)
    for body, signature in inbox.posts:
        assert verify(APP_SECRET, body, signature)
        payload = orjson.loads(body)
        assert payload["object"] == "whatsapp_business_account"
        value = payload["entry"][0]["changes"][0]["value"]
        assert payload["entry"][0]["changes"][0]["field"] == "messages"
        assert value["metadata"]["phone_number_id"] == "2001"
    by_wamid = defaultdict(list)
    for status in _statuses(inbox):
        by_wamid[status["id"]].append(status["status"])
        assert status["biz_opaque_callback_data"] == wamids[status["id"]]
        assert status["recipient_id"].isdigit()
        assert status["timestamp"].isdigit()
    assert {wamid: sorted(seen) for wamid, seen in by_wamid.items()} == {
        wamid: ["delivered", "read", "sent"] for wamid in wamids
    }


async def test_a_tampered_body_or_signature_does_not_verify(
    client: MetaClient, sandbox: SandboxControl, received: tuple[str, Received]
) -> None:
    _, inbox = received
    await _send(client, 1)
    await inbox.wait_for_statuses(1)
    body, signature = inbox.posts[0]
    assert verify(APP_SECRET, body, signature)
    assert not verify(APP_SECRET, body.replace(b'"sent"', b'"read"'), signature)
    assert not verify("another-secret", body, signature)
    assert not verify(APP_SECRET, body, None)
    assert not verify(APP_SECRET, body, signature.removeprefix("sha256="))


async def test_statuses_are_batched_several_per_post(
    client: MetaClient, sandbox: SandboxControl, received: tuple[str, Received]
) -> None:
    _, inbox = received
    await sandbox.reset(sandbox_config(received[0], flush_interval_s=0.5, batch_max=10))
    await _send(client, 20)
    await inbox.wait_for_statuses(60)
    sizes = [
        len(orjson.loads(body)["entry"][0]["changes"][0]["value"]["statuses"])
        for body, _ in inbox.posts
    ]
    assert max(sizes) > 1
    assert max(sizes) <= 10
    assert sum(sizes) == 60


async def test_undeliverable_recipients_fail_with_131026(
    client: MetaClient, sandbox: SandboxControl, received: tuple[str, Received]
) -> None:
    _, inbox = received
    result = await client.send_template("1002", "token-1002", UNDELIVERABLE, HELLO, None, "r-26")
    assert isinstance(result, SendOk)
    await inbox.wait_for_statuses(2)
    statuses = {s["status"]: s for s in _statuses(inbox)}
    assert set(statuses) == {"sent", "failed"}
    assert statuses["failed"]["errors"][0]["code"] == 131026


async def test_out_of_order_delivery_puts_some_reads_before_delivered(
    client: MetaClient, sandbox: SandboxControl, received: tuple[str, Received]
) -> None:
    _, inbox = received
    await sandbox.reset(
        sandbox_config(received[0], out_of_order=True, delivered_delay_s=0.0, read_delay_s=0.3)
    )
    await _send(client, 30)
    await inbox.wait_for_statuses(90)
    order = defaultdict(list)
    for status in _statuses(inbox):
        order[status["id"]].append(status["status"])
    read_first = [w for w, seen in order.items() if seen.index("read") < seen.index("delivered")]
    assert read_first


async def test_read_may_come_without_delivered(
    client: MetaClient, sandbox: SandboxControl, received: tuple[str, Received]
) -> None:
    _, inbox = received
    await sandbox.reset(sandbox_config(received[0], read_skips_delivered_ratio=1.0))
    await _send(client, 3)
    await inbox.wait_for_statuses(6)
    assert sorted(s["status"] for s in _statuses(inbox)) == ["read"] * 3 + ["sent"] * 3


async def test_a_bsuid_recipient_is_reported_by_user_id(
    client: MetaClient, sandbox: SandboxControl, received: tuple[str, Received]
) -> None:
    _, inbox = received
    assert isinstance(
        await client.send_template("2001", "token-2001", "BR.1502576394655843", HELLO), SendOk
    )
    await inbox.wait_for_statuses(1)
    status = _statuses(inbox)[0]
    assert status["recipient_user_id"] == "BR.1502576394655843"
    assert "recipient_id" not in status


def test_sign_matches_the_documented_hmac() -> None:
    # HMAC-SHA256("secret", "body") from any reference implementation.
    assert sign("secret", b"body") == (
        "sha256=dc46983557fea127b43af721467eb9b3fde2338fe3e14f51952aa8478c13d355"
    )


def test_a_non_ascii_signature_header_is_refused_not_an_error() -> None:
    assert not verify(APP_SECRET, b"{}", "sha256=\u00e9\u00e9")


def _values(received: Received) -> list[dict]:
    return [
        change["value"]
        for body, _ in received.posts
        for entry in orjson.loads(body)["entry"]
        for change in entry["changes"]
    ]


async def test_statuses_come_in_the_2026_shape_with_contacts_and_user_ids(
    client: MetaClient, sandbox: SandboxControl, received: tuple[str, Received]
) -> None:
    _, inbox = received
    phone_ok = await client.send_template("1002", "token-1002", "+5511912340001", HELLO, None, "p")
    failing = await client.send_template("1002", "token-1002", UNDELIVERABLE, HELLO, None, "f")
    parent = await client.send_template(
        "1002", "token-1002", "US.ENT.11815799212886844830", HELLO, None, "e"
    )
    assert all(isinstance(r, SendOk) for r in (phone_ok, failing, parent))
    await inbox.wait_for_statuses(3 + 2 + 3)
    by = {(s["biz_opaque_callback_data"], s["status"]): s for s in _statuses(inbox)}
    sent = by[("p", "sent")]
    assert sent["recipient_id"] == "5511912340001"
    assert sent["recipient_user_id"].startswith("BR.")
    assert sent["pricing"]["category"] == "marketing"
    assert "conversation" not in sent
    assert "pricing" not in by[("p", "read")]
    assert "recipient_user_id" not in by[(f := "f", "failed")]  # failed, sent to a phone
    assert by[(f, "failed")]["errors"][0]["error_data"]["details"]
    member = by[("e", "delivered")]
    assert member["recipient_parent_user_id"] == "US.ENT.11815799212886844830"
    assert member["recipient_user_id"].startswith("US.")
    assert "recipient_id" not in member
    contacts = {c["user_id"]: c for v in _values(inbox) for c in v.get("contacts", [])}
    assert contacts[sent["recipient_user_id"]]["wa_id"] == "5511912340001"
    assert (
        contacts[member["recipient_user_id"]]["parent_user_id"]
        == member["recipient_parent_user_id"]
    )


async def test_another_sender_on_the_number_gets_its_statuses_with_its_own_data(
    client: MetaClient, sandbox: SandboxControl, received: tuple[str, Received]
) -> None:
    _, inbox = received
    wamids = await sandbox.other_sender("2001", ["17", "18"], fail_code=131026)
    await inbox.wait_for_statuses(4)
    statuses = _statuses(inbox)
    assert {s["id"] for s in statuses} == set(wamids)
    assert sorted(s["biz_opaque_callback_data"] for s in statuses) == ["17", "17", "18", "18"]
    assert sorted(s["status"] for s in statuses) == ["failed", "failed", "sent", "sent"]
    assert (await sandbox.audit())["accepted"] == 0  # not our sends


async def test_a_value_level_error_webhook_names_the_number_and_has_no_statuses(
    sandbox: SandboxControl, received: tuple[str, Received]
) -> None:
    _, inbox = received
    await sandbox.value_errors("1001")
    body, signature = inbox.posts[-1]
    assert verify(APP_SECRET, body, signature)
    value = orjson.loads(body)["entry"][0]["changes"][0]["value"]
    assert value["metadata"]["phone_number_id"] == "1001"
    assert "statuses" not in value
    assert value["errors"][0]["code"] == 130429
    assert value["errors"][0]["error_data"]["details"]
