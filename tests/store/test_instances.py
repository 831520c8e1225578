from __future__ import annotations

import dataclasses
import uuid

from dispatcher.meta.tiers import MessagingTier
from dispatcher.store import Store
from dispatcher.store.models import InstanceStatus


async def test_an_instance_is_registered_updated_and_never_shows_its_token(store: Store) -> None:
    tag = uuid.uuid4().hex[:8]
    created = await store.instances.upsert(
        f"pn-{tag}", f"biz-{tag}", "EAAG-secret-1", name="sales", throughput_mps=80
    )
    assert created.status is InstanceStatus.ACTIVE
    assert created.throughput_mps == 80
    assert "token" not in {f.name for f in dataclasses.fields(created)}
    assert "EAAG" not in repr(created)

    again = await store.instances.upsert(f"pn-{tag}", f"biz-{tag}", "EAAG-secret-2", name="sales2")
    assert again.id == created.id
    assert again.name == "sales2"
    assert again.throughput_mps == 80  # kept when not given
    assert await store.instances.instance_token(created.id) == "EAAG-secret-2"
    listed = await store.instances.all(business_id=f"biz-{tag}")
    assert [i.id for i in listed] == [created.id]
    assert "EAAG" not in repr(listed)
    assert (await store.portfolios.get(f"biz-{tag}")) is not None


async def test_status_and_detected_limits_are_recorded(store: Store) -> None:
    tag = uuid.uuid4().hex[:8]
    instance = await store.instances.upsert(f"pn-{tag}", f"biz-{tag}", "t")
    assert await store.instances.set_status(instance.id, InstanceStatus.ERROR, "190: token")
    assert await store.instances.record_detection(
        instance.id, tier=MessagingTier.TIER_10K, throughput_mps=1000
    )
    got = await store.instances.get(instance.id)
    assert got is not None
    assert (got.status, got.status_reason) == (InstanceStatus.ERROR, "190: token")
    assert (got.detected_tier, got.throughput_mps) == (MessagingTier.TIER_10K, 1000)
    assert got.tier_detected_at is not None
    assert await store.instances.record_detection(instance.id, throughput_mps=80)
    kept = await store.instances.get(instance.id)
    assert kept is not None
    assert (kept.detected_tier, kept.throughput_mps) == (MessagingTier.TIER_10K, 80)
    assert not await store.instances.set_status(uuid.uuid4(), InstanceStatus.PAUSED)
    assert await store.instances.instance_token(uuid.uuid4()) is None


async def test_a_portfolio_limit_is_detected_or_overridden(store: Store) -> None:
    biz = f"biz-{uuid.uuid4().hex[:8]}"
    fresh = await store.portfolios.ensure(biz)
    assert fresh.limit == 250  # a new portfolio's limit until one is detected
    assert (await store.portfolios.ensure(biz)) == fresh
    detected = await store.portfolios.record_detected(biz, MessagingTier.TIER_2K)
    assert detected.limit == 2000
    assert detected.detected_at is not None
    overridden = await store.portfolios.set_override(biz, MessagingTier.TIER_UNLIMITED)
    assert overridden.limit is None
    back = await store.portfolios.set_override(biz, None)
    assert back.limit == 2000
