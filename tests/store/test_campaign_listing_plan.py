"""The campaign listing (``GET /campaigns``, which the console polls) reads an index, not the
whole table, with 0020's indexes: for the active statuses in one call, one status, or none;
first and later pages; in the custom plan and in the generic one a prepared statement may
settle on. Checked on 50,000 analyzed campaigns, few of them active, as a long-lived
deployment has them; and the same statements without those indexes scan the table."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from dispatcher.services import ServiceUrls
from dispatcher.store import Store
from dispatcher.store.db import connect, create_database, drop_database
from dispatcher.store.migrate import migrate
from dispatcher.store.models import CampaignStatus
from dispatcher.store.plans import capture, custom_plan, generic_plan

CAMPAIGNS = 50_000
ACTIVE = (
    CampaignStatus.RUNNING,
    CampaignStatus.HELD,
    CampaignStatus.PAUSED,
    CampaignStatus.SCHEDULED,
)
INDEXES = {"whatsapp_campaigns_status_newest", "whatsapp_campaigns_newest"}
TABLE = "whatsapp_campaigns"


@pytest.fixture(scope="module")
async def campaigns(
    service_urls: ServiceUrls,
) -> AsyncIterator[tuple[asyncpg.Connection, uuid.UUID]]:
    """A database of 50,000 campaigns, one in 100 active, analyzed; and an active one's id."""
    name = f"dispatcher_listing_{uuid.uuid4().hex[:12]}"
    url = await create_database(service_urls.database_url, name)
    conn = await connect(url)
    try:
        await migrate(conn)
        await conn.execute(
            """
            INSERT INTO whatsapp_campaigns (name, template, status, created_at)
            SELECT 'c' || i, '{}'::jsonb,
                   CASE WHEN i % 100 = 0 THEN (ARRAY['running','held','paused','scheduled'])[
                            1 + (i / 100) % 4]::whatsapp_campaign_status
                        ELSE 'completed' END,
                   now() - make_interval(mins => i)
            FROM generate_series(1, $1::int) AS i
            """,
            CAMPAIGNS,
        )
        await conn.execute("ANALYZE whatsapp_campaigns")
        middle = await conn.fetchval(
            "SELECT id FROM whatsapp_campaigns WHERE status = 'held' "
            "ORDER BY created_at DESC OFFSET 50 LIMIT 1"
        )
        yield conn, middle
    finally:
        await conn.close()
        await drop_database(service_urls.database_url, name)


def listings(after: uuid.UUID) -> dict[str, Callable[[Store], Awaitable[object]]]:
    return {
        "active": lambda st: st.campaigns.newest(statuses=ACTIVE),
        "active, next page": lambda st: st.campaigns.newest(statuses=ACTIVE, after=after),
        "held": lambda st: st.campaigns.newest(statuses=[CampaignStatus.HELD]),
        "held, next page": lambda st: st.campaigns.newest(
            statuses=[CampaignStatus.HELD], after=after
        ),
        "newest": lambda st: st.campaigns.newest(),
        "newest, next page": lambda st: st.campaigns.newest(after=after),
    }


@pytest.mark.parametrize("listing", list(listings(uuid.uuid4())))
async def test_the_listing_reads_an_index(
    campaigns: tuple[asyncpg.Connection, uuid.UUID], listing: str
) -> None:
    conn, after = campaigns
    statement = await capture(listings(after)[listing])
    for plan in (await custom_plan(conn, statement), await generic_plan(conn, statement)):
        assert TABLE not in plan.seq_scans, plan
        assert INDEXES & set(plan.indexes), plan


async def test_without_the_indexes_the_listing_scans_the_table(
    campaigns: tuple[asyncpg.Connection, uuid.UUID],
) -> None:
    conn, after = campaigns
    statement = await capture(listings(after)["active"])
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute(" ".join(f"DROP INDEX {index};" for index in INDEXES))
        plan = await custom_plan(conn, statement)
    finally:
        await transaction.rollback()
    assert TABLE in plan.seq_scans, plan
