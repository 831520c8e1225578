"""A batch's send bodies (our tag as callback data, named parameters, parent BSUIDs), and
what a batch weighs on the stream: recipients only, never the template."""

from __future__ import annotations

import uuid

import orjson
import redis.asyncio as aioredis

from dispatcher.engine.batch import Batch, BatchItem, send_body
from dispatcher.engine.config import EngineConfig
from dispatcher.engine.coordinator import CoordinatorCore
from dispatcher.meta.callback_tag import CallbackTag
from dispatcher.meta.messages import Template
from dispatcher.queue.streams import WorkQueue
from dispatcher.store import Store
from tests.engine.conftest import MakeInstance, phones
from tests.engine.fakes import FakeClock, FakeFleet

TAG = CallbackTag(b"t" * 32)
NAMED = Template(
    "order_update",
    "en_US",
    ({"type": "BODY", "parameters": [{"type": "text", "parameter_name": "first_name"}]},),
)


def _body(address: str, variables) -> dict:
    return orjson.loads(send_body(NAMED, BatchItem(77, address, variables, 0), TAG))


def test_the_callback_data_is_our_tag_for_the_recipient():
    body = _body("+5511999990001", None)
    assert body["biz_opaque_callback_data"] != "77"
    assert TAG.recipient_id(body["biz_opaque_callback_data"]) == 77


def test_the_tag_names_the_attempt_and_a_batch_of_four_fields_still_reads():
    """Each automatic retry is tagged apart (a late status of an earlier one moves nothing);
    a batch routed before the attempt was carried sends the first format, still ours."""
    item = BatchItem(77, "+5511999990001", None, 0, retries=2)
    batch = Batch(uuid.uuid4(), 3, [item])
    assert Batch.from_json(orjson.loads(orjson.dumps(batch.to_json()))) == batch
    body = orjson.loads(send_body(NAMED, item, TAG))
    tagged = TAG.parse(body["biz_opaque_callback_data"])
    assert tagged is not None
    assert (tagged.recipient_id, tagged.attempt) == (77, 2)
    old = {"campaign_id": str(batch.campaign_id), "claim_id": 3, "items": [[77, "+55", None, 1]]}
    (legacy,) = Batch.from_json(old).items
    assert legacy.retries is None
    tagged = TAG.parse(orjson.loads(send_body(NAMED, legacy, TAG))["biz_opaque_callback_data"])
    assert tagged is not None
    assert (tagged.recipient_id, tagged.attempt) == (77, None)


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


def test_a_batch_written_with_a_template_still_reads():
    """Batches routed before the template left them carry one: it is ignored."""
    old = {
        "campaign_id": str(uuid.uuid4()),
        "claim_id": 3,
        "template": {"name": "t", "language": "en", "components": [{"type": "body"}]},
        "items": [[7, "+5511999990001", {"a": "b"}, 1]],
    }
    batch = Batch.from_json(old)
    assert batch.items == [BatchItem(7, "+5511999990001", {"a": "b"}, 1)]
    assert "template" not in batch.to_json()


def _components(size_bytes: int) -> list[dict]:
    text = "{{name}} " + "x" * 1000
    body = {"type": "body", "parameters": [{"type": "text", "text": text}]}
    return [{"type": "header", "parameters": []}] + [body] * (size_bytes // 1024)


async def _stored_batch_bytes(
    store: Store, queue: WorkQueue, redis_client: aioredis.Redis, instance_id, components
) -> int:
    """Route a 100-recipient campaign with ``components`` through the real coordinator; the
    bytes its batch takes on the stream."""
    template = {"name": "big", "language": "en_US", "components": components}
    campaign = await store.campaigns.create(f"c-{uuid.uuid4().hex[:6]}", template, [instance_id])
    recipients = phones(100, start=int(uuid.uuid4().int % 10**7))
    await store.recipients.ingest(campaign.id, recipients)
    config = EngineConfig(batch_size=100, queued_batches_per_instance=1)
    core = CoordinatorCore(store, queue, FakeFleet(), config, FakeClock())
    assert await core.start_campaign(campaign.id)
    await core.tick()
    key = queue.stream(instance_id).key
    [(_, fields)] = await redis_client.xrange(key)
    return len(fields[b"payload"])


async def test_a_stored_batch_is_small_whatever_the_template(
    store: Store,
    work_queue: WorkQueue,
    redis_client: aioredis.Redis,
    make_instance: MakeInstance,
) -> None:
    small_number, large_number = await make_instance(), await make_instance()
    small = await _stored_batch_bytes(store, work_queue, redis_client, small_number.id, [])
    large = await _stored_batch_bytes(
        store, work_queue, redis_client, large_number.id, _components(2 * 2**20)
    )
    # 100 recipients: a few KB either way; with the template in it, the second was 2 MB.
    assert small < 10_000
    assert abs(large - small) < 1_000  # recipient ids differ in width, nothing else
