"""A batch item of a campaign of variants is sent its own variant's template or nothing: an
item naming no variant, or one the campaign lacks, fails unsent (like a message over a
limit), never goes out with another variant's template. No I/O."""

from __future__ import annotations

import uuid

import orjson
import pytest

from dispatcher.engine.batch import Batch, BatchItem, template_from_json
from dispatcher.engine.instance import render
from dispatcher.engine.templates import CampaignTemplates, UnknownVariantError
from dispatcher.meta.callback_tag import CallbackTag
from dispatcher.queue.streams import Job
from dispatcher.store.models import SendOutcome

TAG = CallbackTag(b"t" * 32)
A = template_from_json({"name": "promo_a", "language": {"code": "en_US"}, "components": []})
B = template_from_json({"name": "promo_b", "language": {"code": "en_US"}, "components": []})
TWO = CampaignTemplates(A, (A, B))


def test_pick_refuses_a_variant_the_campaign_lacks() -> None:
    assert TWO.pick(1) is B
    for variant in (None, 2, -1):
        with pytest.raises(UnknownVariantError, match="not one of the campaign's 2 variants"):
            TWO.pick(variant)
    # A campaign of one template: its template, whatever the item says.
    assert CampaignTemplates(A).pick(None) is A


def test_an_item_of_no_variant_fails_unsent_and_the_others_go_out() -> None:
    items = [
        BatchItem(i, f"+551199990000{i}", {}, 0, variant=variant)
        for i, variant in enumerate([0, None, 1, 7])
    ]
    batch = Batch(uuid.uuid4(), 1, items)
    job = Job("1-0", "instance", batch.to_json(), 0)
    messages, over, lost = render(job, batch, TWO, items, TAG, uuid.uuid4())
    sent = {m.recipient_id: orjson.loads(m.body)["template"]["name"] for m in messages}
    assert sent == {0: "promo_a", 2: "promo_b"}
    assert over == []
    assert [r.recipient_id for r in lost] == [1, 3]
    assert {r.outcome for r in lost} == {SendOutcome.FAILED}
    assert lost[0].error_message == "not sent: the message has no template (see error_details)"
    assert lost[1].error_details == "variant 7 is not one of the campaign's 2 variants (0 to 1)"
