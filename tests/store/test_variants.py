"""A/B variants in Postgres: assigned at ingest, counted per variant inside each statement,
switched to the winner by claims after the decision, the winner recorded once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from dispatcher import operations
from dispatcher.ab.assign import VariantPicker
from dispatcher.ab.report import VariantCounts
from dispatcher.ab.settings import AbTest, AutoWinner, Variant
from dispatcher.ab.winner import Decision
from dispatcher.store import Store
from dispatcher.store.models import (
    Campaign,
    CampaignStatus,
    NewRecipient,
    RecipientStatus,
    SendOutcome,
    SendResult,
    StatusUpdate,
)
from tests.store.conftest import assert_counters_exact, phones

A = {"name": "promo_a", "language": "en_US", "components": []}
B = {"name": "promo_b", "language": "en_US", "components": []}
AB = AbTest((Variant("A", 1, A), Variant("B", 3, B)), auto_winner=AutoWinner(10, 0.95))


async def ab_campaign(store: Store, recipients: list[NewRecipient], ab: AbTest = AB) -> Campaign:
    tag = uuid.uuid4().hex[:10]
    instance = await store.instances.upsert(f"pn-{tag}", f"biz-{tag}", f"token-{tag}")
    return await operations.create_campaign(
        store,
        name=f"ab {tag}",
        template=A,
        instance_ids=[instance.id],
        recipients=recipients,
        ab_test=ab,
    )


async def _recount(store: Store, campaign_id: uuid.UUID) -> list[VariantCounts]:
    """Per-variant counters recounted from the rows: what the trigger must keep (a variant
    none of whose rows was ever sent or failed has no counters)."""
    rows = await store.pool.fetch(
        """
        SELECT variant,
               count(*) FILTER (WHERE sent_at IS NOT NULL) AS sent,
               count(*) FILTER (WHERE status IN ('delivered', 'read')) AS delivered,
               count(*) FILTER (WHERE status = 'read') AS read,
               count(*) FILTER (WHERE status = 'failed') AS failed
        FROM whatsapp_campaign_recipients WHERE campaign_id = $1
        GROUP BY variant
        HAVING count(*) FILTER (WHERE sent_at IS NOT NULL OR status = 'failed') > 0
        ORDER BY variant
        """,
        campaign_id,
    )
    return [VariantCounts(**dict(row)) for row in rows]


async def send_claimed(store: Store, campaign: Campaign, claim_id: int, ids: list[int]) -> None:
    instance_id = campaign.instance_ids[0]
    moved = await store.recipients.mark_sending(claim_id, ids, instance_id)
    now = datetime.now(UTC)
    await store.outcomes.apply_results(
        [SendResult(i, SendOutcome.SENT, now, instance_id, 1, f"wamid.{i}") for i in moved]
    )


async def _assert_exact(store: Store, campaign_id: uuid.UUID) -> list[VariantCounts]:
    kept = await store.variants.counts(campaign_id)
    recounted = await _recount(store, campaign_id)
    by_variant = {c.variant: c for c in kept}
    assert [by_variant.get(c.variant, VariantCounts(c.variant)) for c in recounted] == recounted
    campaign = await assert_counters_exact(store, campaign_id)
    assert sum(c.sent for c in kept) == campaign.total_sent
    assert sum(c.read for c in kept) == campaign.total_read
    return kept


async def test_each_row_gets_its_variant_by_weight_at_create_and_append(store: Store) -> None:
    campaign = await ab_campaign(store, [*phones(2_000), NewRecipient(phone="+5511900000001")])
    more = await store.recipients.ingest(campaign.id, [*phones(500, start=2_000), *phones(3)])
    assert more.duplicates == 3
    picker = VariantPicker(campaign.id, AB.weights)
    rows = await store.pool.fetch(
        "SELECT coalesce(phone, user_id) AS address, variant, status FROM "
        "whatsapp_campaign_recipients WHERE campaign_id = $1",
        campaign.id,
    )
    assert len(rows) == 2_504
    assert all(row["variant"] == picker.pick_text(row["address"]) for row in rows)
    assert await _assert_exact(store, campaign.id) == []  # nothing sent: no counters yet
    unique = [r for r in rows if r["status"] == "pending"]
    assert 0.22 < sum(r["variant"] == 0 for r in unique) / len(unique) < 0.28  # weights 1:3


async def test_a_campaign_of_one_template_writes_no_variant(store: Store) -> None:
    tag = uuid.uuid4().hex[:10]
    instance = await store.instances.upsert(f"pn-{tag}", f"biz-{tag}", f"token-{tag}")
    campaign = await operations.create_campaign(
        store, name=tag, template=A, instance_ids=[instance.id], recipients=phones(20)
    )
    await store.recipients.ingest(campaign.id, phones(5, start=20))
    assert (
        await store.pool.fetchval(
            "SELECT count(*) FROM whatsapp_campaign_recipients WHERE campaign_id = $1 "
            "AND variant IS NOT NULL",
            campaign.id,
        )
        == 0
    )
    assert await store.variants.counts(campaign.id) == []
    assert await store.variants.report(campaign.id) is None


async def test_counters_follow_sends_reads_and_failures_per_variant(store: Store) -> None:
    campaign = await ab_campaign(store, phones(200))
    assert await store.campaigns.transition(campaign.id, CampaignStatus.RUNNING)
    claim = await store.recipients.claim_pending(campaign.id, 120)
    assert claim is not None
    instance_id = campaign.instance_ids[0]
    ids = await store.recipients.mark_sending(
        claim.claim_id, [r.id for r in claim.recipients], instance_id
    )
    now = datetime.now(UTC)
    results = [
        SendResult(i, SendOutcome.SENT, now, instance_id, 1, f"wamid.{i}") for i in ids[:100]
    ] + [
        SendResult(i, SendOutcome.FAILED, now, instance_id, 1, error_code=131026) for i in ids[100:]
    ]
    await store.outcomes.apply_results(results)
    await store.outcomes.apply_statuses(
        [StatusUpdate(RecipientStatus.READ, now, wamid=f"wamid.{i}") for i in ids[:40]]
    )
    counts = await _assert_exact(store, campaign.id)
    assert sum(c.sent for c in counts) == 100
    assert sum(c.read for c in counts) == 40
    assert sum(c.failed for c in counts) == 20
    report = await store.variants.report(campaign.id)
    assert report is not None
    for line in report.variants:
        assert line.read_rate == (line.read / line.sent if line.sent else None)
        assert line.read_rate_low <= (line.read_rate or 0.0) <= line.read_rate_high


async def test_claims_after_the_winner_get_its_template_and_it_is_recorded_once(
    store: Store,
) -> None:
    campaign = await ab_campaign(store, phones(400))
    assert await store.campaigns.transition(campaign.id, CampaignStatus.RUNNING)
    before = await store.recipients.claim_pending(campaign.id, 100)
    assert before is not None
    assert {r.variant for r in before.recipients} == {0, 1}
    # Ten of variant B's claimed rows go out before the decision.
    early = [r.id for r in before.recipients if r.variant == 1][:10]
    await send_claimed(store, campaign, before.claim_id, early)
    first = Decision(0, 2.5, 0.006, {"variants": []})
    winner, added = await store.variants.record_winner(campaign.id, first)
    assert (winner.variant, added) == (0, True)
    again, added = await store.variants.record_winner(campaign.id, Decision(1, 9, 0, {}))
    assert (again.variant, again.z, again.decided_at, added) == (0, 2.5, winner.decided_at, False)
    # Rows given back after the decision switch when claimed again; the rest too.
    await store.recipients.requeue(before.claim_id, [r.id for r in before.recipients])
    after = []
    while (claim := await store.recipients.claim_pending(campaign.id, 100)) is not None:
        after.extend(claim.recipients)
        await send_claimed(store, campaign, claim.claim_id, [r.id for r in claim.recipients])
    assert len(after) == 390
    assert {r.variant for r in after} == {0}
    counts = await _assert_exact(store, campaign.id)
    assert [(c.variant, c.sent) for c in counts] == [(0, 390), (1, 10)]
    report = await store.variants.report(campaign.id)
    assert report is not None
    assert report.winner is not None
    assert [line.winner for line in report.variants] == [True, False]
    assert report.to_json()["winner"]["variant"] == 0


async def test_a_template_hold_reaches_every_variant(store: Store) -> None:
    campaign = await ab_campaign(store, phones(5))
    assert await store.campaigns.transition(campaign.id, CampaignStatus.RUNNING)
    held = await store.campaigns.hold_template("promo_b", "en_US", "paused")
    assert campaign.id in held
    released = await store.campaigns.release_template("promo_b", None)
    assert campaign.id in released


async def test_the_counter_trigger_exits_on_new_rows_alone_and_joins_once(store: Store) -> None:
    """Cost, not behaviour (the counters' exactness is the tests above): a statement on rows
    without variants reads one transition table before leaving (a variant never goes back
    to NULL), and the counting joins the two once (migration 0022)."""
    source = await store.pool.fetchval(
        "SELECT prosrc FROM pg_proc WHERE proname = 'whatsapp_recipients_variants_updated'"
    )
    early_exit, counting = source.split("INSERT INTO", 1)
    assert "new_rows" in early_exit
    assert "old_rows" not in early_exit
    assert counting.count("JOIN old_rows") == 1
    assert "JOIN new_rows" not in counting


async def test_a_hold_stays_while_another_live_variants_template_is_paused(store: Store) -> None:
    campaign = await ab_campaign(store, phones(5))
    assert await store.campaigns.transition(campaign.id, CampaignStatus.RUNNING)
    assert campaign.id in await store.campaigns.hold_template("promo_a", "en_US", "A paused")
    assert campaign.id not in await store.campaigns.hold_template("promo_b", None, "B paused")
    # A approved: B is still paused, and B is sent too.
    assert campaign.id not in await store.campaigns.release_template("promo_a", "en_US")
    held = await store.campaigns.get(campaign.id)
    assert held is not None
    assert held.status is CampaignStatus.HELD
    assert campaign.id in await store.campaigns.release_template("promo_b", "en_US")


async def test_once_a_winner_is_recorded_only_its_template_keeps_a_hold(store: Store) -> None:
    campaign = await ab_campaign(store, phones(5))
    assert await store.campaigns.transition(campaign.id, CampaignStatus.RUNNING)
    await store.campaigns.hold_template("promo_a", "en_US", "A paused")
    await store.campaigns.hold_template("promo_b", "en_US", "B paused")
    await store.variants.record_winner(campaign.id, Decision(0, 3.0, 0.001, {"variants": []}))
    # B lost: nothing sends it any more, its pause holds nothing.
    assert campaign.id in await store.campaigns.release_template("promo_a", None)
