"""No hot-path statement reads the recipients or the contacts table through: checked on the
planner's own choices with realistic statistics (200,000 recipients shaped as the 10 million
of ``make bench-scale``, analyzed), never by forbidding sequential scans.

Each statement's custom plan (executed, rolled back) and generic plan are read; a statement
that regresses to a Seq Scan of a big table, or to an index walk that reads and discards
thousands of rows (the primary key in id order, filtering one campaign), fails here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from dispatcher.bench.pg_data import fill
from dispatcher.services import ServiceUrls
from dispatcher.store.db import connect, create_database, drop_database
from dispatcher.store.hot_paths import BATCH, HOT_PATHS, HotPath, Sample, plan_hot_paths
from dispatcher.store.migrate import migrate
from dispatcher.store.plans import Statement, capture, custom_plan, generic_plan

ROWS = 200_000
DISCARD_LIMIT = 2 * BATCH
"""Rows read then discarded a statement may cost: a batch's worth (ids not matching, rows of
a batch in another status), far below one campaign's rows (100,000 here)."""


@pytest.fixture(scope="module")
async def filled(service_urls: ServiceUrls) -> AsyncIterator[tuple[asyncpg.Connection, Sample]]:
    name = f"dispatcher_plans_{uuid.uuid4().hex[:12]}"
    url = await create_database(service_urls.database_url, name)
    conn = await connect(url)
    try:
        await migrate(conn)
        yield conn, await fill(conn, ROWS)
    finally:
        await conn.close()
        await drop_database(service_urls.database_url, name)


@pytest.mark.parametrize("path", HOT_PATHS, ids=[p.name for p in HOT_PATHS])
async def test_hot_path_uses_an_index(
    filled: tuple[asyncpg.Connection, Sample], path: HotPath
) -> None:
    conn, sample = filled
    [plan] = await plan_hot_paths(conn, sample, [path])
    assert not plan.custom.scans_big_table, plan.custom
    assert not plan.generic.scans_big_table, plan.generic
    assert plan.custom.rows_discarded <= DISCARD_LIMIT, plan.custom


async def test_the_check_catches_a_scan_and_a_wasteful_index_walk(
    filled: tuple[asyncpg.Connection, Sample],
) -> None:
    """The listing as it was before 0014: one statement in id order walked the primary key
    through the earlier campaigns' rows; and a filter no index serves scans the table."""
    conn, sample = filled
    walk = Statement(
        "SELECT id, phone FROM whatsapp_campaign_recipients "
        "WHERE campaign_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        (sample.running, 0, 100),
    )
    assert (await custom_plan(conn, walk)).rows_discarded > DISCARD_LIMIT
    scan = Statement(
        "SELECT count(*) FROM whatsapp_portfolio_contacts WHERE first_sent_at < now()", ()
    )
    assert (await generic_plan(conn, scan)).scans_big_table
    assert (await custom_plan(conn, scan)).scans_big_table


async def test_a_looks_matured_sends_read_one_campaign_through_its_index(
    filled: tuple[asyncpg.Connection, Sample],
) -> None:
    """Not a hot path: the automatic winner counts matured sends only at its looks (a few per
    campaign), so reading one campaign's rows is fine; reading the table is not. On a
    campaign of a few percent of the rows (the running one is half of this sample's: there a
    scan is the planner's right choice, and costs the same)."""
    conn, sample = filled
    statement = await capture(lambda store: store.variants.matured(sample.completed, 3_600))
    for plan in (await custom_plan(conn, statement), await generic_plan(conn, statement)):
        assert not plan.scans_big_table, plan
        assert any("whatsapp_recipients_campaign" in index for index in plan.indexes), plan
