"""Uploads staged outside the database: all or nothing, within the row limit, nothing left."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from dispatcher import operations
from dispatcher.errors import InvalidRecipientError, UploadLimitError
from dispatcher.store import Store
from dispatcher.store.models import NewRecipient
from dispatcher.store.staging import SPOOL_MEMORY_BYTES
from dispatcher.uploads import UploadLimit, UploadLimits
from tests.store.conftest import TEMPLATE, MakeWorld, assert_counters_exact, phones


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _campaigns_named(store: Store, name: str) -> int:
    count: int = await store.pool.fetchval(
        "SELECT count(*) FROM whatsapp_campaigns WHERE name = $1", name
    )
    return count


async def test_an_append_past_the_row_limit_records_nothing(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(recipients=3, running=False)
    with pytest.raises(UploadLimitError) as refused:
        await store.recipients.ingest(
            world.campaign.id, phones(11, start=100), UploadLimits(max_rows=10)
        )
    assert (refused.value.limit, refused.value.maximum) == (UploadLimit.ROWS, 10)
    campaign = await assert_counters_exact(store, world.campaign.id)
    assert (campaign.total_recipients, campaign.pending) == (3, 3)
    # Exactly at the limit is fine.
    added = await store.recipients.ingest(
        world.campaign.id, phones(10, start=100), UploadLimits(max_rows=10)
    )
    assert added.rows == 10


async def test_a_create_that_fails_mid_stream_leaves_no_campaign_and_no_file(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(running=False)
    name = f"failing {uuid.uuid4().hex[:10]}"
    rows = 200_000  # well past what stays in memory: the spool is a file on disk

    async def upload() -> AsyncIterator[NewRecipient]:
        for i in range(rows):
            yield NewRecipient(phone=f"+55119{i:08d}", variables={"name": f"customer {i}"})
        yield NewRecipient(phone="+55")  # the last line is bad

    assert rows * 30 > SPOOL_MEMORY_BYTES
    files = _open_files()
    with pytest.raises(InvalidRecipientError) as refused:
        await operations.create_campaign(
            store,
            name=name,
            template=TEMPLATE,
            instance_ids=[world.instance.id],
            recipients=upload(),
        )
    assert refused.value.index == rows
    assert await _campaigns_named(store, name) == 0
    assert _open_files() == files


async def test_a_create_past_the_row_limit_leaves_no_campaign(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(running=False)
    name = f"too many {uuid.uuid4().hex[:10]}"
    with pytest.raises(UploadLimitError):
        await operations.create_campaign(
            store,
            name=name,
            template=TEMPLATE,
            instance_ids=[world.instance.id],
            recipients=phones(6),
            limits=UploadLimits(max_rows=5),
        )
    assert await _campaigns_named(store, name) == 0


async def test_a_create_keeps_its_duplicates_and_an_append_sees_them(
    store: Store, make_world: MakeWorld
) -> None:
    world = await make_world(running=False)
    campaign = await operations.create_campaign(
        store,
        name=f"dups {uuid.uuid4().hex[:10]}",
        template=TEMPLATE,
        instance_ids=[world.instance.id],
        recipients=[*phones(3), *phones(2)],
        limits=UploadLimits(max_rows=5),
    )
    assert (campaign.total_recipients, campaign.total_duplicates, campaign.pending) == (5, 2, 3)
    again = await store.recipients.ingest(campaign.id, [*phones(1), *phones(1, start=50)])
    assert (again.rows, again.duplicates) == (2, 1)
    fresh = await assert_counters_exact(store, campaign.id)
    assert (fresh.total_recipients, fresh.total_duplicates, fresh.pending) == (7, 3, 4)
