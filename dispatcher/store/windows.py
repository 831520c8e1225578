"""Recipients held by a send window, and those a campaign's expiry ends (migration 0017).

- ``defer``: claimed (``queued``) rows whose window is closed go back to ``pending`` with
  ``not_before`` at their window's next opening: the claim's due index (0015) does not walk
  them again before then.
- ``expire``: past a running, paused or held campaign's ``expires_at``, its rows not handed
  to a sender yet (``pending``, and ``queued`` ones: a sender's hand-over only takes rows
  still queued in its claim) end ``expired``; a running campaign then settles and completes,
  a paused or held one when it is resumed.
- ``waiting``: how many pending rows are not due yet, and when the first comes due.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

EXPIRED_MESSAGE = "expired: not sent before the campaign's expires_at"
EXPIRE_BATCH = 10_000
"""Rows expired per statement: short transactions, however large the campaign."""
# A campaign stopped by the operator or a hold (paused, held) expires all the same: its
# deadline passed, its rows could never be sent (a claim checks expires_at), and progress says
# so now rather than when it is resumed.

# Candidates first, each from its own index (pending rows from the due index of 0015, queued
# ones from (campaign_id, status, id)), then locked and checked again: one scan over both
# statuses in id order walked the campaign's every row (a sequential scan at 200,000 rows).
_EXPIRE = """
WITH locked AS (
    SELECT r.id FROM whatsapp_campaign_recipients r
    WHERE (r.id = ANY(ARRAY(
               SELECT p.id FROM whatsapp_campaign_recipients p
               WHERE p.campaign_id = $1 AND p.status = 'pending'
               ORDER BY p.not_before, p.id LIMIT $2))
           OR r.id = ANY(ARRAY(
               SELECT q.id FROM whatsapp_campaign_recipients q
               WHERE q.campaign_id = $1 AND q.status = 'queued'
               ORDER BY q.id LIMIT $2)))
    AND r.campaign_id = $1 AND r.status IN ('pending', 'queued')
    AND EXISTS (SELECT 1 FROM whatsapp_campaigns c
                WHERE c.id = $1 AND c.status IN ('running', 'paused', 'held')
                  AND c.expires_at <= now())
    ORDER BY r.id LIMIT $2
    FOR UPDATE OF r SKIP LOCKED
)
UPDATE whatsapp_campaign_recipients r
SET status = 'expired', claim_id = NULL, failed_at = now(), error_message = $3,
    updated_at = now()
FROM locked
WHERE r.id = locked.id AND r.status IN ('pending', 'queued')
"""


@dataclass(frozen=True, slots=True)
class Held:
    """A campaign's pending rows that are not due yet (``not_before`` ahead)."""

    count: int
    until: datetime | None
    """When the first of them comes due."""


class Windows:
    """Every method is one round trip, whatever the number of rows (``expire`` one per
    :data:`EXPIRE_BATCH`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def defer(self, claim_id: int, until: Sequence[tuple[int, datetime]]) -> int:
        """Rows still ``queued`` in claim ``claim_id`` -> ``pending``, each not before its
        time (recipient id, when); returns how many. Scoped like ``Recipients.requeue``."""
        result = await self._pool.execute(
            """
            WITH given AS (
                SELECT * FROM unnest($2::bigint[], $3::timestamptz[]) AS g(id, not_before)
            ), locked AS (
                SELECT r.id, g.not_before FROM whatsapp_campaign_recipients r
                JOIN given g ON g.id = r.id
                WHERE r.claim_id = $1 AND r.status = 'queued'
                ORDER BY r.id FOR UPDATE OF r
            )
            UPDATE whatsapp_campaign_recipients r
            SET status = 'pending', claim_id = NULL, not_before = locked.not_before,
                updated_at = now()
            FROM locked
            WHERE r.id = locked.id AND r.claim_id = $1 AND r.status = 'queued'
            """,
            claim_id,
            [recipient_id for recipient_id, _ in until],
            [at for _, at in until],
        )
        return int(result.split()[-1])

    async def expire(self, campaign_id: UUID) -> int:
        """End the unsent rows of a running, paused or held campaign past its
        ``expires_at`` (database clock); returns how many. Rows locked elsewhere (a sender's
        hand-over) are skipped: they are a sender's now, or pending again for the next
        sweep."""
        expired = 0
        while True:
            result = await self._pool.execute(_EXPIRE, campaign_id, EXPIRE_BATCH, EXPIRED_MESSAGE)
            count = int(result.split()[-1])
            expired += count
            if count < EXPIRE_BATCH:
                return expired

    async def stopped_past_expiry(self) -> list[UUID]:
        """Paused or held campaigns past their ``expires_at`` with rows left to expire
        (0021's partial index: a handful of campaigns, read each round)."""
        rows = await self._pool.fetch(
            """
            SELECT id FROM whatsapp_campaigns
            WHERE status IN ('paused', 'held') AND expires_at IS NOT NULL
              AND expires_at <= now() AND pending_count + queued_count > 0
            """
        )
        return [row["id"] for row in rows]

    async def waiting(self, campaign_ids: Sequence[UUID]) -> dict[UUID, Held]:
        """Per campaign with any: its pending rows not due yet (database clock), from the
        due index (0015) alone."""
        rows = await self._pool.fetch(
            """
            SELECT campaign_id, count(*) AS held, min(not_before) AS until
            FROM whatsapp_campaign_recipients
            WHERE campaign_id = ANY($1::uuid[]) AND status = 'pending' AND not_before > now()
            GROUP BY campaign_id
            """,
            list(campaign_ids),
        )
        return {row["campaign_id"]: Held(row["held"], row["until"]) for row in rows}
