"""Reads per template: the sandbox's stand-in for recipients who open one template more
often than another (what an A/B test of templates measures)."""

from __future__ import annotations

import random
import time

import pytest
from pydantic import ValidationError

from dispatcher.sandbox.audit import Audit
from dispatcher.sandbox.config import NumberConfig, SandboxConfig, WebhookConfig
from dispatcher.sandbox.webhooks import Accepted, WebhookSender

NUMBER = NumberConfig(phone_number_id="1", token="t", business_id="b")


def _reads(sender: WebhookSender) -> dict[str, int]:
    wamids = {entry[3]["id"] for entry in sender._heap if entry[3]["status"] == "read"}
    return {prefix: sum(w.startswith(prefix) for w in wamids) for prefix in ("a", "b", "c")}


def test_each_template_is_read_at_its_own_ratio_others_at_the_global_one() -> None:
    config = WebhookConfig(read_ratio=0.5, read_ratio_by_template={"promo_a": 0.9, "promo_b": 0.1})
    sender = WebhookSender(config, Audit(10), time.monotonic, time.time, random.Random(7))
    for i in range(1_000):
        for prefix, template in (("a", "promo_a"), ("b", "promo_b"), ("c", "hello_world")):
            sender.schedule(Accepted(NUMBER, f"{prefix}{i}", f"+1555{i:07d}", None, None, template))
    reads = _reads(sender)
    assert 850 < reads["a"] < 950
    assert 60 < reads["b"] < 140
    assert 450 < reads["c"] < 550


def test_ratios_are_validated_with_the_config() -> None:
    body = {"webhook": {"read_ratio_by_template": {"promo_a": 1.5}}}
    with pytest.raises(ValidationError, match="read_ratio_by_template"):
        SandboxConfig.model_validate(body)
