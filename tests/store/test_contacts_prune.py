"""Pruning the portfolio contacts past the window: oldest first, bounded per statement."""

from __future__ import annotations

import uuid

from dispatcher.store import Store

DAY_S = 86_400.0
# Far older than any contact another test records: only this test's rows are that old.
ANCIENT_S = 400 * DAY_S


async def _contacts(store: Store, business_id: str) -> dict[str, float]:
    rows = await store.pool.fetch(
        "SELECT recipient, extract(epoch FROM now() - last_sent_at)::float8 AS age_s "
        "FROM whatsapp_portfolio_contacts WHERE business_id = $1",
        business_id,
    )
    return {row["recipient"]: row["age_s"] for row in rows}


async def test_prune_deletes_the_oldest_past_the_window_at_most_limit_per_call(
    store: Store,
) -> None:
    business = f"biz-{uuid.uuid4().hex[:10]}"
    await store.portfolios.ensure(business)
    # Five ancient contacts (the oldest first: old-0), two inside the window.
    await store.pool.execute(
        """
        INSERT INTO whatsapp_portfolio_contacts
            (business_id, recipient, first_sent_at, last_sent_at)
        SELECT $1, 'old-' || n, t, t FROM generate_series(0, 4) AS n,
             LATERAL (SELECT now() - make_interval(secs => $2) - (5 - n) * interval '1 day'
                      AS t) AS at
        UNION ALL
        SELECT $1, 'recent-' || n, now() - interval '1 hour', now() - interval '1 hour'
        FROM generate_series(0, 1) AS n
        """,
        business,
        ANCIENT_S,
    )
    threshold = ANCIENT_S - 1

    assert await store.portfolios.prune_contacts(threshold, limit=2) == 2
    assert sorted(await _contacts(store, business)) == [
        "old-2", "old-3", "old-4", "recent-0", "recent-1"
    ]  # fmt: skip
    assert await store.portfolios.prune_contacts(threshold, limit=2) == 2
    assert await store.portfolios.prune_contacts(threshold, limit=2) == 1
    assert await store.portfolios.prune_contacts(threshold, limit=2) == 0
    assert sorted(await _contacts(store, business)) == ["recent-0", "recent-1"]
    # At the default window (24 h) the recent ones stay too.
    await store.portfolios.prune_contacts()
    assert sorted(await _contacts(store, business)) == ["recent-0", "recent-1"]
