"""What an instance worker sends: each recipient's own rendered message, byte for byte, with
the campaign's template read from Postgres once; a recipient over one of Meta's limits fails
alone, never sent. Real Redis, real Postgres, the sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib

import orjson

from dispatcher.engine.batch import BatchItem, send_body, template_from_json
from dispatcher.meta.callback_tag import CallbackTag
from dispatcher.meta.client import MetaClient
from dispatcher.queue.streams import WorkQueue
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from dispatcher.store.models import NewRecipient, RecipientStatus
from tests.engine.conftest import MakeInstance
from tests.engine.fakes import wait_for
from tests.engine.test_instance_worker import (
    routed,
    sandbox_number,
    settled,
    worker,
)
from tests.engine.test_instance_worker import worker_store as worker_store  # a fixture

TEMPLATE = {
    "name": "hello_world",
    "language": {"code": "en_US"},
    "components": [
        {"type": "header", "parameters": [{"type": "text", "text": "{{title}}"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Olá {{name}}, {{offer}}"}]},
    ],
}
OVER = 4
"""The recipient whose header breaks Meta's 60 characters."""


def _recipients(start: int) -> list[NewRecipient]:
    recipients = [
        NewRecipient(
            phone=f"+5511997{start + i:06d}",
            variables={"title": f"Pedido {i}", "name": f"Ana {i}", "offer": "{{name}}"},
        )
        for i in range(10)
    ]
    recipients[OVER] = NewRecipient(
        phone=recipients[OVER].phone, variables={"title": "t" * 61, "name": "Bo", "offer": "1"}
    )
    return recipients


def _hash(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=8).hexdigest()


async def test_each_recipient_gets_its_own_message_and_one_over_a_limit_fails_alone(
    store: Store,
    worker_store: Store,
    work_queue: WorkQueue,
    make_instance: MakeInstance,
    client: MetaClient,
    sandbox: SandboxControl,
    tag: CallbackTag,
) -> None:
    instance = await sandbox_number(make_instance)
    campaign = await store.campaigns.create("render", TEMPLATE, [instance.id])
    given = _recipients(5000)
    await store.recipients.ingest(campaign.id, given)
    await routed(store, work_queue, instance, campaign, 10)
    running = worker(instance, worker_store, work_queue, client, flush_interval_s=0.1)
    task = asyncio.create_task(running.run())
    try:
        # Every result written (the failed one among them), then the batch acked.
        await wait_for(lambda: running.written == 10)
        await wait_for(lambda: settled(work_queue, instance.id))
    finally:
        running.stop()
        await asyncio.wait_for(task, 30)

    rows = {r.phone: r for r in await store.recipients.page(campaign.id, limit=100)}
    over = rows.pop(given[OVER].phone)
    assert over.status is RecipientStatus.FAILED
    assert over.error_details == (
        "header text parameter 1 is 61 characters, more than Meta's limit of 60"
    )
    assert over.error_message is not None
    assert "limit" in over.error_message
    assert (over.wamid, over.sent_at) == (None, None)
    assert {r.status for r in rows.values()} == {RecipientStatus.SENT}
    assert running.unsendable == 1

    # The sandbox got the nine others' messages, each exactly as rendered, and nothing else.
    # (As Postgres keeps it: jsonb orders keys its own way, and the bytes follow.)
    stored = await store.campaigns.template(campaign.id)
    assert stored is not None
    template = template_from_json(stored)
    expected = {
        _hash(send_body(template, BatchItem(r.id, r.phone or "", r.variables, 0, retries=0), tag))
        for r in rows.values()
    }
    requests = await sandbox.requests()
    assert {r["body_hash"] for r in requests} == expected
    assert given[OVER].phone not in {r["recipient"] for r in requests}
    # A placeholder inside a value went out as literal text.
    sample = rows[given[0].phone]
    body = orjson.loads(
        send_body(
            template, BatchItem(sample.id, sample.phone or "", sample.variables, 0, retries=0), tag
        )
    )
    assert body["template"]["components"][1]["parameters"][0]["text"] == "Olá Ana 0, {{name}}"
    # The template came from Postgres once, not with the batch.
    assert running.templates.loads == 1
