"""The marketing suppression list: per business portfolio, who must not get campaigns.

Filled by 131050 answers and ``user_preferences`` stops (lifted by a ``resume``), and by the
operator over REST. Campaigns skip a suppressed recipient when it is routed: the row ends
``suppressed`` (final, never sent, counted in the campaign's ``total_suppressed``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from dispatcher.store.suppression_import import Imported, import_suppressions
from dispatcher.suppression_files import SuppressionLine
from dispatcher.uploads import UploadLimits


@dataclass(frozen=True, slots=True)
class Suppression:
    business_id: str
    address: str
    """An E.164 phone or a BSUID, as recipients are stored."""
    reason: str
    source: str
    created_at: datetime


def _suppression(row: Mapping[str, Any]) -> Suppression:
    return Suppression(
        row["business_id"], row["address"], row["reason"], row["source"], row["created_at"]
    )


class Suppressions:
    """Suppression rows; every method is one round trip."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(
        self, business_id: str, addresses: Sequence[str], reason: str, source: str
    ) -> int:
        """Suppress ``addresses`` for the business (idempotent); how many were new."""
        result = await self._pool.execute(
            """
            INSERT INTO whatsapp_suppressions (business_id, address, reason, source)
            SELECT $1, a, $3, $4 FROM unnest($2::text[]) AS a
            ON CONFLICT (business_id, address) DO NOTHING
            """,
            business_id,
            sorted(set(addresses)),
            reason,
            source,
        )
        return int(result.split()[-1])

    async def import_list(
        self,
        business_id: str,
        given: AsyncIterable[SuppressionLine],
        limits: UploadLimits | None = None,
    ) -> Imported:
        """Suppress every address of a list (streamed), or none of them when one is refused
        (suppression_import.py)."""
        return await import_suppressions(self._pool, business_id, given, limits)

    async def remove(self, business_id: str, addresses: Sequence[str]) -> int:
        """Lift the suppression of ``addresses`` (idempotent); how many were suppressed."""
        result = await self._pool.execute(
            "DELETE FROM whatsapp_suppressions WHERE business_id = $1 AND address = ANY($2)",
            business_id,
            list(addresses),
        )
        return int(result.split()[-1])

    async def page(
        self,
        business_id: str | None = None,
        *,
        address: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Suppression]:
        rows = await self._pool.fetch(
            """
            SELECT business_id, address, reason, source, created_at FROM whatsapp_suppressions
            WHERE ($1::text IS NULL OR business_id = $1) AND ($2::text IS NULL OR address = $2)
            ORDER BY business_id, address LIMIT $3 OFFSET $4
            """,
            business_id,
            address,
            limit,
            offset,
        )
        return [_suppression(row) for row in rows]

    async def skip_suppressed(self, business_id: str, recipient_ids: Sequence[int]) -> list[int]:
        """Of these claimed (``queued``) recipients, move the suppressed ones to
        ``suppressed`` (with the reason); their ids, which must not be sent."""
        rows = await self._pool.fetch(
            """
            WITH locked AS (
                SELECT r.id, s.reason FROM whatsapp_campaign_recipients r
                JOIN whatsapp_suppressions s
                  ON s.business_id = $1 AND s.address = coalesce(r.phone, r.user_id)
                WHERE r.id = ANY($2::bigint[]) AND r.status = 'queued'
                ORDER BY r.id FOR UPDATE OF r
            )
            UPDATE whatsapp_campaign_recipients r
            SET status = 'suppressed', claim_id = NULL, failed_at = now(),
                error_message = left('suppressed for marketing: ' || locked.reason, 500),
                updated_at = now()
            FROM locked WHERE r.id = locked.id
            RETURNING r.id
            """,
            business_id,
            list(recipient_ids),
        )
        return sorted(row["id"] for row in rows)
