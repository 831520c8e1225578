"""A/B variants in Postgres (migration 0016): settings, templates, counters, the winner.

The counters are kept by the database (statement-level triggers): read only here. The
winner is written once per campaign; a second decision, from a restarted or a standby
coordinator, finds the first and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import asyncpg

from dispatcher.ab.assign import VariantPicker
from dispatcher.ab.report import VariantCounts, VariantReport, Winner, build
from dispatcher.ab.settings import AbTest
from dispatcher.ab.winner import Decision
from dispatcher.errors import StoreError

_WINNER = """SELECT variant, decided_at, z, p_value, figures FROM whatsapp_variant_winners
WHERE campaign_id = $1"""


def _winner(row: Mapping[str, Any]) -> Winner:
    return Winner(row["variant"], row["z"], row["p_value"], row["figures"], row["decided_at"])


def _counts(row: Mapping[str, Any]) -> VariantCounts:
    return VariantCounts(row["variant"], row["sent"], row["delivered"], row["read"], row["failed"])


async def variant_picker(conn: asyncpg.Connection, campaign_id: UUID) -> VariantPicker | None:
    """How an append to the campaign picks each row's variant; None without variants."""
    stored = await conn.fetchval(
        "SELECT ab_test FROM whatsapp_campaigns WHERE id = $1", campaign_id
    )
    return None if stored is None else VariantPicker(campaign_id, AbTest.from_json(stored).weights)


class Variants:
    """Per-campaign A/B state; each method one round trip."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def templates(
        self, campaign_id: UUID
    ) -> dict[str, Any] | tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The campaign's template, with its variants' when it has some (what an instance
        actor's template cache loads); None: no such campaign."""
        row = await self._pool.fetchrow(
            "SELECT template, ab_test FROM whatsapp_campaigns WHERE id = $1", campaign_id
        )
        if row is None:
            return None
        if row["ab_test"] is None:
            return dict(row["template"])
        return dict(row["template"]), [dict(v["template"]) for v in row["ab_test"]["variants"]]

    async def counts(self, campaign_id: UUID) -> list[VariantCounts]:
        rows = await self._pool.fetch(
            "SELECT * FROM whatsapp_campaign_variants WHERE campaign_id = $1 ORDER BY variant",
            campaign_id,
        )
        return [_counts(row) for row in rows]

    async def winner(self, campaign_id: UUID) -> Winner | None:
        row = await self._pool.fetchrow(_WINNER, campaign_id)
        return None if row is None else _winner(row)

    async def report(self, campaign_id: UUID) -> VariantReport | None:
        """Everything shown of the campaign's variants; None: no such campaign, or one
        template only."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            stored = await conn.fetchval(
                "SELECT ab_test FROM whatsapp_campaigns WHERE id = $1", campaign_id
            )
            if stored is None:
                return None
            rows = await conn.fetch(
                "SELECT * FROM whatsapp_campaign_variants WHERE campaign_id = $1", campaign_id
            )
            won = await conn.fetchrow(_WINNER, campaign_id)
        return build(
            AbTest.from_json(stored),
            [_counts(row) for row in rows],
            None if won is None else _winner(won),
        )

    async def matured(self, campaign_id: UUID, read_after_s: float) -> list[VariantCounts]:
        """Per variant, the sends at least ``read_after_s`` old and how many of them were
        read: what a look of the automatic winner judges (``dispatcher/ab/winner.py``). The
        counters cannot tell a send's age; this reads the campaign's rows through its index
        (no table scan, tests/store/test_hot_path_plans.py), once per look, a few times in a
        campaign's life."""
        rows = await self._pool.fetch(
            """
            SELECT variant, count(*) AS sent, count(*) FILTER (WHERE status = 'read') AS read
            FROM whatsapp_campaign_recipients
            WHERE campaign_id = $1 AND variant IS NOT NULL
              AND sent_at <= now() - make_interval(secs => $2)
            GROUP BY variant ORDER BY variant
            """,
            campaign_id,
            float(read_after_s),
        )
        return [VariantCounts(row["variant"], sent=row["sent"], read=row["read"]) for row in rows]

    async def undecided(self, campaign_ids: Sequence[UUID]) -> dict[UUID, list[VariantCounts]]:
        """Of ``campaign_ids``, those without a winner yet: their counters."""
        rows = await self._pool.fetch(
            """
            SELECT v.* FROM whatsapp_campaign_variants v
            WHERE v.campaign_id = ANY($1::uuid[])
              AND NOT EXISTS (SELECT 1 FROM whatsapp_variant_winners w
                              WHERE w.campaign_id = v.campaign_id)
            ORDER BY v.campaign_id, v.variant
            """,
            list(campaign_ids),
        )
        found: dict[UUID, list[VariantCounts]] = {}
        for row in rows:
            found.setdefault(row["campaign_id"], []).append(_counts(row))
        return found

    async def record_winner(self, campaign_id: UUID, decision: Decision) -> tuple[Winner, bool]:
        """Record ``decision`` unless the campaign has a winner already: (the winner as
        recorded, whether this call recorded it). From then on every claim of the campaign
        gets the winner's template (``Recipients.claim_pending``)."""
        row = await self._pool.fetchrow(
            """
            WITH added AS (
                INSERT INTO whatsapp_variant_winners (campaign_id, variant, z, p_value, figures)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (campaign_id) DO NOTHING
                RETURNING variant, decided_at, z, p_value, figures
            )
            SELECT variant, decided_at, z, p_value, figures, true AS added FROM added
            UNION ALL
            SELECT variant, decided_at, z, p_value, figures, false FROM whatsapp_variant_winners
            WHERE campaign_id = $1 AND NOT EXISTS (SELECT 1 FROM added)
            """,
            campaign_id,
            decision.variant,
            decision.z,
            decision.p_value,
            decision.figures,
        )
        if row is None:  # another coordinator's decision committed while this one waited
            won = await self.winner(campaign_id)
            if won is None:
                raise StoreError("campaign", campaign_id, "no winner recorded")
            return won, False
        return _winner(row), bool(row["added"])
