"""Portfolio holds: Meta's 131064 (messaging limit reached after template violations).

Meta holds the whole business portfolio, so none of its numbers may get work until the hold
ends. The hold is a fact about the portfolio, not about one actor's memory: it is kept here,
so a restarted coordinator keeps honouring it, until an operator ends it (a number of the
portfolio registered again, or an explicit release).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class PortfolioHold:
    business_id: str
    held_at: datetime
    reason: str | None


class PortfolioHolds:
    """The ``held_at`` / ``hold_reason`` columns of ``whatsapp_portfolios``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def hold(self, business_id: str, reason: str | None = None) -> bool:
        """Record a hold (idempotent: the first ``held_at`` is kept); True when it is new."""
        result = await self._pool.execute(
            """
            INSERT INTO whatsapp_portfolios (business_id, held_at, hold_reason)
            VALUES ($1, now(), $2)
            ON CONFLICT (business_id) DO UPDATE
            SET held_at = now(), hold_reason = excluded.hold_reason, updated_at = now()
            WHERE whatsapp_portfolios.held_at IS NULL
            """,
            business_id,
            reason,
        )
        return bool(result == "INSERT 0 1")

    async def release(self, business_id: str) -> bool:
        """End the hold; False when the portfolio was not held."""
        result = await self._pool.execute(
            """
            UPDATE whatsapp_portfolios SET held_at = NULL, hold_reason = NULL, updated_at = now()
            WHERE business_id = $1 AND held_at IS NOT NULL
            """,
            business_id,
        )
        return bool(result == "UPDATE 1")

    async def get(self, business_id: str) -> PortfolioHold | None:
        row = await self._pool.fetchrow(
            "SELECT business_id, held_at, hold_reason FROM whatsapp_portfolios "
            "WHERE business_id = $1 AND held_at IS NOT NULL",
            business_id,
        )
        return None if row is None else PortfolioHold(row[0], row[1], row[2])

    async def all(self) -> dict[str, PortfolioHold]:
        rows = await self._pool.fetch(
            "SELECT business_id, held_at, hold_reason FROM whatsapp_portfolios "
            "WHERE held_at IS NOT NULL"
        )
        return {row[0]: PortfolioHold(row[0], row[1], row[2]) for row in rows}
