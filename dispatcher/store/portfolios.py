"""Business portfolios: their messaging limit and the recipients inside their 24 h window."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import asyncpg

from dispatcher.meta.tiers import MessagingTier
from dispatcher.policies import Clock
from dispatcher.policies.messaging_limit import DAY_S
from dispatcher.store.models import LimitSource, Portfolio

_COLUMNS = "business_id, detected_tier, detected_at, override_tier, limit_source, limit_error"


def _tier(value: str | None) -> MessagingTier | None:
    return None if value is None else MessagingTier(value)


def _portfolio(row: Mapping[str, Any]) -> Portfolio:
    return Portfolio(
        business_id=row["business_id"],
        detected_tier=_tier(row["detected_tier"]),
        detected_at=row["detected_at"],
        override_tier=_tier(row["override_tier"]),
        limit_source=None if row["limit_source"] is None else LimitSource(row["limit_source"]),
        limit_error=row["limit_error"],
    )


class Portfolios:
    """Portfolio rows and the contact history the messaging-limit gate is rebuilt from.

    Contacts are recorded by the database itself (a trigger) the first time Meta is known to
    have accepted a message, whichever path reports it (send result or webhook).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ensure(self, business_id: str) -> Portfolio:
        """The portfolio, created without a known limit when new."""
        row = await self._pool.fetchrow(
            f"""
            WITH ins AS (
                INSERT INTO whatsapp_portfolios (business_id) VALUES ($1)
                ON CONFLICT (business_id) DO NOTHING
                RETURNING {_COLUMNS}
            )
            SELECT {_COLUMNS} FROM ins
            UNION ALL
            SELECT {_COLUMNS} FROM whatsapp_portfolios WHERE business_id = $1
            LIMIT 1
            """,
            business_id,
        )
        return _portfolio(row)

    async def get(self, business_id: str) -> Portfolio | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM whatsapp_portfolios WHERE business_id = $1", business_id
        )
        return None if row is None else _portfolio(row)

    async def all(self) -> list[Portfolio]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM whatsapp_portfolios ORDER BY business_id"
        )
        return [_portfolio(row) for row in rows]

    async def record_detected(
        self,
        business_id: str,
        tier: MessagingTier,
        source: LimitSource = LimitSource.GRAPH_API,
    ) -> Portfolio:
        """The limit the Graph API (or a ``business_capability_update`` webhook) reported."""
        row = await self._pool.fetchrow(
            f"""
            INSERT INTO whatsapp_portfolios
                (business_id, detected_tier, detected_at, limit_source)
            VALUES ($1, $2, now(), $3)
            ON CONFLICT (business_id) DO UPDATE
            SET detected_tier = excluded.detected_tier, detected_at = now(),
                limit_source = excluded.limit_source, limit_error = NULL, updated_at = now()
            RETURNING {_COLUMNS}
            """,
            business_id,
            tier.value,
            source.value,
        )
        return _portfolio(row)

    async def record_unreadable(self, business_id: str, error: str) -> Portfolio:
        """The Graph API would not say the limit: keep its error (shown in stats). A limit
        learnt before stays in force; a portfolio without one is marked unreadable."""
        row = await self._pool.fetchrow(
            f"""
            INSERT INTO whatsapp_portfolios (business_id, limit_source, limit_error)
            VALUES ($1, 'unreadable', $2)
            ON CONFLICT (business_id) DO UPDATE
            SET limit_error = excluded.limit_error,
                limit_source = CASE WHEN whatsapp_portfolios.detected_tier IS NULL
                                    THEN 'unreadable' ELSE whatsapp_portfolios.limit_source END,
                updated_at = now()
            RETURNING {_COLUMNS}
            """,
            business_id,
            error[:500],
        )
        return _portfolio(row)

    async def set_override(self, business_id: str, tier: MessagingTier | None) -> Portfolio:
        """An operator's limit, in force over the detected one; None removes the override."""
        row = await self._pool.fetchrow(
            f"""
            INSERT INTO whatsapp_portfolios (business_id, override_tier) VALUES ($1, $2)
            ON CONFLICT (business_id) DO UPDATE
            SET override_tier = excluded.override_tier, updated_at = now()
            RETURNING {_COLUMNS}
            """,
            business_id,
            None if tier is None else tier.value,
        )
        return _portfolio(row)

    async def window(self, business_id: str, window_s: float = DAY_S) -> list[tuple[str, float]]:
        """``(recipient, seconds since the last send)`` for everyone sent to in the window.

        Ages, not timestamps, measured on the database's clock: the caller maps them onto
        its own clock, so clock skew between hosts does not move the window.
        """
        rows = await self._pool.fetch(
            """
            SELECT recipient, extract(epoch FROM now() - last_sent_at)::float8 AS age_s
            FROM whatsapp_portfolio_contacts
            WHERE business_id = $1 AND last_sent_at > now() - make_interval(secs => $2)
            """,
            business_id,
            window_s,
        )
        return [(row["recipient"], max(0.0, row["age_s"])) for row in rows]

    async def gate_history(
        self, business_id: str, clock: Clock = time.monotonic, window_s: float = DAY_S
    ) -> list[tuple[str, float]]:
        """The window as ``(recipient, sent_at)`` in ``clock`` time, for
        ``MessagingLimitGate.from_history(limit, history, clock=clock)``."""
        now = clock()
        return [
            (recipient, now - age) for recipient, age in await self.window(business_id, window_s)
        ]

    async def prune_contacts(self, older_than_s: float = DAY_S, limit: int = 10_000) -> int:
        """Forget up to ``limit`` contacts last sent to before the window (they no longer
        count), oldest first; how many. Call again until it returns less than ``limit``.

        Bounded: one short transaction per batch, never one that locks millions of rows.
        Read through the ``last_sent_at`` index (0014) and deleted by row address (a join
        back on the key was planned as a scan of the whole table); a contact sent to again
        meanwhile (its ``last_sent_at`` moved) is re-checked under its row lock and kept.
        """
        result = await self._pool.execute(
            """
            DELETE FROM whatsapp_portfolio_contacts
            WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM whatsapp_portfolio_contacts
                WHERE last_sent_at < now() - make_interval(secs => $1)
                ORDER BY last_sent_at LIMIT $2
                FOR UPDATE SKIP LOCKED))
            """,
            older_than_s,
            limit,
        )
        return int(result.split()[-1])
