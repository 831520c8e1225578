"""TemplateCache over the real Postgres: one read per campaign, bounded, forgotten on stop."""

from __future__ import annotations

import uuid

from dispatcher.engine.templates import TemplateCache
from dispatcher.store import Store
from tests.engine.conftest import MakeInstance


def _template(components_bytes: int = 0) -> dict:
    body = {"type": "body", "parameters": [{"type": "text", "text": "x" * components_bytes}]}
    return {"name": "promo", "language": {"code": "pt_BR"}, "components": [body]}


async def _campaigns(store: Store, make_instance: MakeInstance, n: int, size: int = 0) -> list:
    instance = await make_instance()
    return [
        (
            await store.campaigns.create(
                f"t-{uuid.uuid4().hex[:6]}", _template(size), [instance.id]
            )
        ).id
        for _ in range(n)
    ]


async def test_a_template_is_read_once_and_as_stored(store: Store, make_instance: MakeInstance):
    [campaign] = await _campaigns(store, make_instance, 1, size=10)
    cache = TemplateCache(store.campaigns.template, max_campaigns=4, max_bytes=2**20)
    first = await cache.get(campaign)
    assert first is not None
    assert (first.name, first.language) == ("promo", "pt_BR")
    assert first.components[0]["parameters"][0]["text"] == "x" * 10
    assert await cache.get(campaign) is first
    assert cache.loads == 1


async def test_no_campaign_no_template(store: Store) -> None:
    cache = TemplateCache(store.campaigns.template, max_campaigns=4, max_bytes=2**20)
    assert await cache.get(uuid.uuid4()) is None
    assert len(cache) == 0


async def test_the_least_recently_used_leave_first(store: Store, make_instance: MakeInstance):
    a, b, c = await _campaigns(store, make_instance, 3)
    cache = TemplateCache(store.campaigns.template, max_campaigns=2, max_bytes=2**20)
    await cache.get(a)
    await cache.get(b)
    await cache.get(a)  # b is now the least recently used
    await cache.get(c)
    assert len(cache) == 2
    loads = cache.loads
    await cache.get(a)
    assert cache.loads == loads  # still kept
    await cache.get(b)
    assert cache.loads == loads + 1  # evicted, read again


async def test_the_byte_budget_bounds_the_cache(store: Store, make_instance: MakeInstance):
    campaigns = await _campaigns(store, make_instance, 5, size=100_000)
    cache = TemplateCache(store.campaigns.template, max_campaigns=100, max_bytes=250_000)
    for campaign in campaigns:
        assert await cache.get(campaign) is not None
        assert cache.size_bytes <= 250_000
    assert len(cache) == 2
    # One template larger than the whole budget is still served (the batch needs it).
    [huge] = await _campaigns(store, make_instance, 1, size=300_000)
    assert await cache.get(huge) is not None
    assert len(cache) == 1


async def test_stopped_campaigns_are_forgotten(store: Store, make_instance: MakeInstance):
    a, b = await _campaigns(store, make_instance, 2, size=1_000)
    cache = TemplateCache(store.campaigns.template, max_campaigns=4, max_bytes=2**20)
    await cache.get(a)
    await cache.get(b)
    before = cache.size_bytes
    cache.forget([a, uuid.uuid4()])
    assert len(cache) == 1
    assert 0 < cache.size_bytes < before
