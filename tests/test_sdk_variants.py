"""The driver SDK's A/B campaigns on the session's deployment: created with variants, shown
with their counters; a wrong setting is a ValueError naming it, before anything is stored."""

from __future__ import annotations

import uuid

import pytest

from dispatcher import operations
from dispatcher.sdk import Dispatcher
from tests.stack import Stack

A = {"name": "promo_a", "language": "en_US"}
B = {"name": "promo_b", "language": "en_US"}


def test_a_campaign_of_variants_through_the_sdk(stack: Stack) -> None:
    d = Dispatcher(stack.coordinator, stack.deployment)
    try:
        instance = d._run(
            operations.register_instance(
                d._get_store(),
                phone_number_id=f"sdk-{uuid.uuid4().hex[:8]}",
                access_token="token",
                business_id="sdk-biz",
                throughput_mps=80,
            )
        )
        campaign = d.create_campaign(
            "sdk-ab",
            None,
            [instance.id],
            [{"phone": f"+5562{i:08d}"} for i in range(12)],
            variants=[{"template": A}, {"template": B, "weight": 2, "label": "bold"}],
            auto_winner={"min_sends_per_variant": 100},
        )
        assert campaign.template == A
        report = d.variants(campaign.id)
        assert report is not None
        assert [(v.label, v.weight, v.template["name"]) for v in report.variants] == [
            ("A", 1.0, "promo_a"),
            ("bold", 2.0, "promo_b"),
        ]
        assert [v.sent for v in report.variants] == [0, 0]
        assert report.winner is None
        assert report.to_json()["auto_winner"] == {
            "min_sends_per_variant": 100,
            "confidence": 0.95,
            "max_looks": 5,
            "read_after_s": 3_600.0,
        }
        plain = d.create_campaign("sdk-plain", A, [instance.id])
        assert d.variants(plain.id) is None
        with pytest.raises(ValueError, match=r"^template"):
            d.create_campaign("x", A, [instance.id], variants=[{"template": A}] * 2)
        with pytest.raises(ValueError, match=r"^variants"):
            d.create_campaign("x", None, [instance.id], variants=[{"template": A}])
        with pytest.raises(ValueError, match=r"^confidence, auto_winner"):
            d.create_campaign("x", A, [instance.id], auto_winner={})
    finally:
        d.close(shutdown=False)
