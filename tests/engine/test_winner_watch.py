"""The coordinator's automatic winner over the real Postgres: decided on the counters, recorded
once, and a second coordinator (a restart, a standby taking over) decides nothing again."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from dispatcher.ab.settings import AbTest, AutoWinner, Variant
from dispatcher.engine.winner_watch import WinnerWatch
from dispatcher.store import Store
from dispatcher.store.models import Campaign, CampaignStatus, RecipientStatus, StatusUpdate
from tests.clock import FakeClock
from tests.store.conftest import phones
from tests.store.test_variants import A, B, ab_campaign, send_claimed

EVEN = AbTest(
    (Variant("A", 1, A), Variant("B", 1, B)), auto_winner=AutoWinner(30, 0.95, read_after_s=0)
)


async def _sent(store: Store, reads: dict[int, float], ab: AbTest = EVEN) -> Campaign:
    """A running A/B campaign of 200, 100 of them sent; of variant v's, ``reads[v]`` read."""
    campaign = await ab_campaign(store, phones(200), ab)
    assert await store.campaigns.transition(campaign.id, CampaignStatus.RUNNING)
    claim = await store.recipients.claim_pending(campaign.id, 100)
    assert claim is not None
    await send_claimed(store, campaign, claim.claim_id, [r.id for r in claim.recipients])
    by_variant: dict[int, list[int]] = {}
    for r in claim.recipients:
        by_variant.setdefault(r.variant or 0, []).append(r.id)
    read = [i for v, rows in by_variant.items() for i in rows[: int(len(rows) * reads[v])]]
    now = datetime.now(UTC)
    await store.outcomes.apply_statuses(
        [StatusUpdate(RecipientStatus.READ, now, wamid=f"wamid.{i}") for i in read]
    )
    fresh = await store.campaigns.get(campaign.id)
    assert fresh is not None
    return fresh


async def test_a_winner_is_recorded_once_whoever_judges(store: Store) -> None:
    campaign = await _sent(store, {0: 0.2, 1: 0.8})
    clock = FakeClock()
    first = WinnerWatch(store, interval_s=1.0, clock=clock)
    assert first.due()
    recorded = await first.check([campaign])
    assert recorded[campaign.id].variant == 1
    assert not first.due()
    clock.advance(1.0)
    assert first.due()
    assert await first.check([campaign]) == {}  # known decided: not even asked
    standby = WinnerWatch(store, interval_s=1.0)  # a restarted or standby coordinator
    assert await standby.check([campaign]) == {}
    assert standby.decisions == 0
    winner = await store.variants.winner(campaign.id)
    assert winner == recorded[campaign.id]
    assert [v["label"] for v in winner.figures["variants"]] == ["A", "B"]


async def test_no_winner_without_a_difference_or_without_the_setting(store: Store) -> None:
    even = await _sent(store, {0: 0.5, 1: 0.5})
    watch = WinnerWatch(store, interval_s=0.0)
    assert await watch.check([even]) == {}
    assert await store.variants.winner(even.id) is None
    manual = await _sent(store, {0: 0.0, 1: 1.0})
    assert manual.ab_test is not None
    settings = {**manual.ab_test, "auto_winner": None}
    assert await watch.check([dataclasses.replace(manual, ab_test=settings)]) == {}
    assert await store.variants.winner(manual.id) is None


async def test_sends_too_fresh_to_be_read_are_not_judged(store: Store) -> None:
    waits = dataclasses.replace(EVEN, auto_winner=AutoWinner(30, 0.95, read_after_s=3_600))
    campaign = await _sent(store, {0: 0.0, 1: 1.0}, waits)
    watch = WinnerWatch(store, interval_s=0.0)
    assert await watch.check([campaign]) == {}
    assert await store.variants.winner(campaign.id) is None
    matured = await store.variants.matured(campaign.id, 0)
    assert sum(c.sent for c in matured) == 100
    assert await store.variants.matured(campaign.id, 3_600) == []


async def test_a_look_is_judged_once_however_often_the_watch_checks(store: Store) -> None:
    """Reads arriving after a look changed nothing: the next look waits for twice the sends
    (the sends here stay at about 50 a variant, short of the second look's 60)."""
    campaign = await _sent(store, {0: 0.5, 1: 0.5})
    watch = WinnerWatch(store, interval_s=0.0)
    assert await watch.check([campaign]) == {}
    unread = await store.pool.fetch(
        "SELECT id FROM whatsapp_campaign_recipients WHERE campaign_id = $1 AND variant = 1 "
        "AND sent_at IS NOT NULL AND status <> 'read'",
        campaign.id,
    )
    now = datetime.now(UTC)
    await store.outcomes.apply_statuses(
        [StatusUpdate(RecipientStatus.READ, now, wamid=f"wamid.{r['id']}") for r in unread]
    )
    counts = {c.variant: c for c in await store.variants.counts(campaign.id)}
    assert counts[1].read == counts[1].sent
    assert await watch.check([campaign]) == {}
    assert await store.variants.winner(campaign.id) is None
    # A new coordinator has not judged that look: it may (README, "A/B variants").
    assert (await WinnerWatch(store, interval_s=0.0).check([campaign]))[campaign.id].variant == 1
