"""Streaming ingest of a campaign's recipients, one message per address.

A list may name the same phone or BSUID twice (a CSV exported twice), in one upload or across
appends. Every row is kept, but only the first row of each address is ever sent: the others
become ``duplicate`` (final: never claimed, never sent), counted in ``total_duplicates``.

How one ingest runs:

0. the campaign must exist and not be finished (checked first, so a refused upload is not
   read); the rows are validated and staged outside the database as they stream in
   (staging.py), so that no transaction waits on the client. Then, in one transaction
   (:func:`apply`), once the input ended:
1. the campaign is checked again (it may have finished meanwhile);
2. an advisory lock on the campaign: appends to one campaign take turns, so each sees every
   row the previous one committed (two concurrent appends of the same address cannot both
   insert it as ``pending``); claims and send results are not held up by it;
3. one binary COPY straight into the table of the staged stream, as it was encoded;
4. the campaign row is locked (the counter trigger of step 3 already holds it) and its status
   read again: a campaign the coordinator completed while the rows streamed in refuses them
   (:class:`CampaignFinishedError`, nothing recorded); from here to the commit a completion
   waits, then finds the new pending rows and leaves the campaign running;
5. one UPDATE turns this ingest's rows whose address came earlier (in this input, or in the
   campaign before it) from ``pending`` to ``duplicate``. Nobody else ever sees them pending:
   the rows are not committed yet. Rows staged ``invalid`` (a phone in no numbering plan)
   are never duplicates: an address always gets the same verdict, so its repeats are
   ``invalid`` too, each counted once, in ``total_invalid``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from uuid import UUID

import asyncpg

from dispatcher.errors import CampaignFinishedError, StoreError
from dispatcher.store.models import Ingested, NewRecipient
from dispatcher.store.staging import StagedUpload, stage
from dispatcher.store.variants import variant_picker
from dispatcher.uploads import UploadLimits

_FINISHED = frozenset({"completed", "cancelled", "failed"})

# pg_advisory_xact_lock(class, key): the class says "ingest", the key is the campaign (a hash
# collision only makes two campaigns' appends take turns).
LOCK_CLASS = 0x696E6765  # "inge"

# jit off: the planner's estimates for these statements cross the JIT threshold on large
# inputs, and compiling costs more (measured 250 ms on 200,000 rows) than it saves; work_mem:
# the sort by address of 200,000 rows spilled to disk with the default 4 MB.
_LOCK = f"""
SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true),
       pg_advisory_xact_lock({LOCK_CLASS}, hashtext($1::uuid::text))
"""
# A statement of its own, after the lock: its snapshot sees the previous append committed.
# The watermark: ids of this campaign above it are this ingest's rows (appends take turns,
# and the identity sequence only grows). ``earlier``: the rows committed before it.
_WATERMARK = """
SELECT nextval(pg_get_serial_sequence('whatsapp_campaign_recipients', 'id')) AS watermark,
       (SELECT total_recipients FROM whatsapp_campaigns WHERE id = $1) AS earlier
"""
_STATUS = "SELECT status FROM whatsapp_campaigns WHERE id = $1"
_LOCK_STATUS = "SELECT status FROM whatsapp_campaigns WHERE id = $1 FOR UPDATE"

# A row of this ingest is a duplicate when an earlier row of it has the same address, or the
# campaign had that address before (any row: a duplicate row implies its original). The
# address is the phone or the BSUID as given (an E.164 phone starts with '+', a BSUID never
# does); the first row of an address has the lowest id, ids following the input order.
_MARK_DUPLICATES = """
WITH new AS (
    SELECT id, coalesce(phone, user_id) AS address,
           row_number() OVER (PARTITION BY coalesce(phone, user_id) ORDER BY id) AS nth
    FROM whatsapp_campaign_recipients
    WHERE campaign_id = $1 AND status = 'pending' AND id > $2
), duplicates AS (
    SELECT id FROM new
    WHERE nth > 1 OR ($3 AND EXISTS (
        SELECT 1 FROM whatsapp_campaign_recipients o
        WHERE o.campaign_id = $1 AND coalesce(o.phone, o.user_id) = new.address AND o.id < $2))
)
UPDATE whatsapp_campaign_recipients r
SET status = 'duplicate', updated_at = now()
FROM duplicates d
WHERE r.id = d.id
"""


async def _check_open(conn: asyncpg.Connection, campaign_id: UUID, query: str) -> None:
    status = await conn.fetchval(query, campaign_id)
    if status is None:
        raise StoreError("campaign", campaign_id, "not found")
    if status in _FINISHED:
        raise CampaignFinishedError(campaign_id, status)


async def apply(conn: asyncpg.Connection, upload: StagedUpload) -> Ingested:
    """Record a staged upload in its campaign, inside the caller's transaction on ``conn``:
    steps 1 to 5 of the module docstring."""
    campaign_id = upload.campaign_id
    await _check_open(conn, campaign_id, _STATUS)
    await conn.execute(_LOCK, campaign_id)
    begun = await conn.fetchrow(_WATERMARK, campaign_id)
    copied = await conn.copy_to_table(
        "whatsapp_campaign_recipients",
        source=upload.stream(),
        columns=upload.columns,
        format="binary",
    )
    await _check_open(conn, campaign_id, _LOCK_STATUS)
    # A campaign's first rows need no look-up of earlier ones (a create, or a CSV at once).
    marked = await conn.execute(
        _MARK_DUPLICATES, campaign_id, begun["watermark"], begun["earlier"] > 0
    )
    return Ingested(
        rows=int(copied.split()[-1]), duplicates=int(marked.split()[-1]), invalid=upload.invalid
    )


async def ingest(
    pool: asyncpg.Pool,
    campaign_id: UUID,
    rows: Iterable[NewRecipient] | AsyncIterable[NewRecipient],
    limits: UploadLimits | None = None,
) -> Ingested:
    """Append recipients from a (possibly async) stream: ``pending``, ``duplicate`` when
    their address came earlier, or ``invalid`` for a phone in no numbering plan (see the
    module docstring for how).

    All or nothing: an invalid row (:class:`InvalidRecipientError`, with its index), more
    than ``limits.max_rows`` (:class:`UploadLimitError`) or a failing input leave the
    campaign as it was. Refused for a missing campaign (:class:`StoreError`) and a finished
    one (:class:`CampaignFinishedError`), also when it finished while the rows streamed in.
    """
    async with pool.acquire() as conn:
        await _check_open(conn, campaign_id, _STATUS)
        picker = await variant_picker(conn, campaign_id)
    upload = await stage(rows, campaign_id, limits, picker)
    try:
        async with pool.acquire() as conn, conn.transaction():
            return await apply(conn, upload)
    finally:
        upload.close()
