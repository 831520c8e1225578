"""End to end over real HTTP, real actors and the sandbox: an A/B campaign of two templates
whose recipients read at different rates (the sandbox's per-template read ratios); the
automatic winner is the one read more, recorded once, and everything claimed after the
decision goes out with its template, as the sandbox's audit shows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx

from dispatcher import operations
from dispatcher.sandbox.config import TemplateConfig
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from tests.stack import API_TOKEN, Stack, wait_until

LOW = {"name": "ab_rarely_read", "language": "en_US", "components": []}
HIGH = {"name": "ab_often_read", "language": "en_US", "components": []}
SIZE = 1_200
RATE_MPS = 100
"""About twelve seconds of sends: routing keeps several seconds of a number's work claimed
ahead (about 800 recipients at 100 msg/s in a measured run), and the first reads need about
a second to come back: some hundreds are claimed after the decision."""


async def test_the_winner_is_the_variant_read_more_and_takes_the_rest(
    stack: Stack, store: Store
) -> None:
    control = SandboxControl(stack.sandbox.url)
    base = stack.sandbox.config
    webhook = base.webhook.model_copy(
        update={"read_ratio_by_template": {LOW["name"]: 0.1, HIGH["name"]: 0.9}}
    )
    templates = [*(base.templates or []), TemplateConfig(name=LOW["name"])]
    templates.append(TemplateConfig(name=HIGH["name"]))
    await control.reset(base.model_copy(update={"webhook": webhook, "templates": templates}))
    try:
        await _run(stack, store, control)
    finally:
        await control.reset(base)
        await control.aclose()


async def _run(stack: Stack, store: Store, control: SandboxControl) -> None:
    instance = await operations.register_instance(
        store,
        phone_number_id="6002",
        access_token=stack.numbers["6002"],
        business_id="biz-large",
        throughput_mps=RATE_MPS,
    )
    await stack.coordinator.refresh_instance.remote(str(instance.id))
    phones = [f"+5730{i:08d}" for i in range(SIZE)]
    body = {
        "name": f"ab-{uuid.uuid4().hex[:6]}",
        "instance_ids": [str(instance.id)],
        "variants": [{"template": LOW, "label": "low"}, {"template": HIGH, "label": "high"}],
        "auto_winner": {"min_sends_per_variant": 20, "confidence": 0.95, "read_after_s": 2},
        "recipients": [{"phone": phone} for phone in phones],
    }
    async with httpx.AsyncClient(
        base_url=f"{stack.api.url}/api/whatsapp",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=60,
    ) as api:
        created = await api.post("/campaigns", json=body)
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        assert created.json()["ab_test"]["variants"][1]["label"] == "high"
        assert (await api.post(f"/campaigns/{campaign_id}/send")).status_code == 200

        async def settled() -> dict[str, Any] | None:
            shown = (await api.get(f"/campaigns/{campaign_id}")).json()
            done = shown["status"] == "completed" and shown["total_delivered"] == SIZE
            return shown if done else None

        campaign = await wait_until(settled, timeout_s=120)
        report = (await api.get(f"/campaigns/{campaign_id}/variants")).json()

    winner = report["winner"]
    assert winner is not None, report
    assert winner["variant"] == 1
    assert [v["winner"] for v in report["variants"]] == [False, True]
    figures = winner["figures"]
    assert [v["label"] for v in figures["variants"]] == ["low", "high"]
    assert all(v["sent"] >= 20 for v in figures["variants"])
    assert figures["comparisons"][0]["p"] < 0.05
    assert winner["p_value"] == figures["comparisons"][0]["p"]
    high = figures["variants"][1]
    assert high["interval"][0] <= high["read_rate"] <= high["interval"][1]
    # Recorded once: the coordinator kept judging after it, and nothing moved.
    assert (
        await store.pool.fetchval(
            "SELECT count(*) FROM whatsapp_variant_winners WHERE campaign_id = $1",
            uuid.UUID(campaign_id),
        )
        == 1
    )

    # Counters add up: per variant, to the campaign's, and to the rows.
    lines = report["variants"]
    for key, total in (("sent", "total_sent"), ("delivered", "total_delivered")):
        assert sum(v[key] for v in lines) == campaign[total] == SIZE
    assert sum(v["read"] for v in lines) == campaign["total_read"]
    assert sum(v["failed"] for v in lines) == campaign["total_failed"] == 0
    assert lines[1]["read_rate"] > 0.7 > 0.3 > lines[0]["read_rate"]

    # What Meta (the sandbox) got: each recipient its row's variant's template, and every
    # recipient claimed after the decision the winner's.
    rows = await store.pool.fetch(
        "SELECT phone, variant, queued_at FROM whatsapp_campaign_recipients WHERE campaign_id = $1",
        uuid.UUID(campaign_id),
    )
    decided_at = datetime.fromisoformat(winner["decided_at"])
    sent_template = {
        r["recipient"]: r["template"]
        for r in await control.requests(limit=10 * SIZE)
        if r["status"] == 200 and r["recipient"] in set(phones)
    }
    assert len(sent_template) == SIZE
    names = [LOW["name"], HIGH["name"]]
    assert all(sent_template[r["phone"]] == names[r["variant"]] for r in rows)
    later = [r for r in rows if r["queued_at"] > decided_at]
    earlier = [r for r in rows if r["queued_at"] <= decided_at]
    assert later, "the campaign ended before a winner was decided: nothing to check"
    assert earlier, "the winner was decided before any send"
    assert {sent_template[r["phone"]] for r in later} == {HIGH["name"]}
    assert {r["variant"] for r in earlier} == {0, 1}
    audit = await control.audit()
    assert audit["duplicate_sends"] == 0
    print(
        f"A/B: {len(earlier)} claimed before the decision, {len(later)} after; "
        f"winner z {winner['z']:.2f} p {winner['p_value']:.2g}; figures {figures['variants']}"
    )
