"""Rebuilding the queue from Postgres, the system of record, when Redis lost batches.

Redis may lose its data (a restart without persistence, a flush) or an operator may clear
the queue. Postgres still knows every recipient: ``queued`` rows whose batch is gone go back
to ``pending`` at once (a batch that survived finds them out of its claim and sends nothing);
``sending`` rows were in an actor's hands and may have reached Meta: left to a live holder
(it keeps them alive), and marked in doubt once nobody has touched them for a while (the
in-doubt policy settles them, store/fencing.py). A marker kept in both stores tells a Redis
that lost its data from one that did not.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from dispatcher.errors import StoreError


class Recovery:
    """The queue markers and the row moves of a rebuild; each one round trip."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- the marker ----------------------------------------------------------------------

    async def marker(self, queue_prefix: str, token: str) -> tuple[str, bool]:
        """The queue's marker token and whether it is new: the one already recorded, else
        ``token``, recorded now (a new deployment, whose Redis has lost nothing)."""
        row = await self._pool.fetchrow(
            """
            WITH ins AS (
                INSERT INTO whatsapp_queue_markers (queue_prefix, token) VALUES ($1, $2)
                ON CONFLICT (queue_prefix) DO NOTHING RETURNING token
            )
            SELECT token, true AS created FROM ins
            UNION ALL
            SELECT token, false FROM whatsapp_queue_markers WHERE queue_prefix = $1
            LIMIT 1
            """,
            queue_prefix,
            token,
        )
        return str(row["token"]), bool(row["created"])

    async def mark_lost(self, queue_prefix: str) -> datetime:
        """Record that the queue lost its batches now; returns that time (database clock)."""
        lost_at: datetime | None = await self._pool.fetchval(
            """
            UPDATE whatsapp_queue_markers
            SET lost_at = now(), losses = losses + 1, updated_at = now()
            WHERE queue_prefix = $1 RETURNING lost_at
            """,
            queue_prefix,
        )
        if lost_at is None:  # no marker yet (a clear before the first check): record both
            lost_at = await self._pool.fetchval(
                """
                INSERT INTO whatsapp_queue_markers (queue_prefix, token, lost_at, losses)
                VALUES ($1, gen_random_uuid()::text, now(), 1)
                ON CONFLICT (queue_prefix) DO UPDATE
                SET lost_at = now(), losses = whatsapp_queue_markers.losses + 1
                RETURNING lost_at
                """,
                queue_prefix,
            )
        if lost_at is None:
            raise StoreError("queue marker", queue_prefix, "loss not recorded")
        return lost_at

    async def lost_at(self, queue_prefix: str) -> datetime | None:
        """When the queue last lost its batches, while some of their rows are unresolved."""
        value: datetime | None = await self._pool.fetchval(
            "SELECT lost_at FROM whatsapp_queue_markers WHERE queue_prefix = $1", queue_prefix
        )
        return value

    async def losses(self, queue_prefix: str) -> int:
        value = await self._pool.fetchval(
            "SELECT losses FROM whatsapp_queue_markers WHERE queue_prefix = $1", queue_prefix
        )
        return int(value or 0)

    async def resolved(self, queue_prefix: str, lost_at: datetime) -> bool:
        """Forget ``lost_at`` once every row sent for before it has left ``sending`` or is
        marked in doubt (unless a newer loss replaced it meanwhile); True when forgotten."""
        result = await self._pool.execute(
            """
            UPDATE whatsapp_queue_markers SET lost_at = NULL, updated_at = now()
            WHERE queue_prefix = $1 AND lost_at = $2
              AND NOT EXISTS (SELECT 1 FROM whatsapp_campaign_recipients
                              WHERE campaign_id = ANY(ARRAY(
                                        SELECT id FROM whatsapp_campaigns
                                        WHERE sending_count > 0))
                                AND status = 'sending' AND sending_at < $2
                                AND in_doubt_at IS NULL)
            """,
            queue_prefix,
            lost_at,
        )
        return bool(result == "UPDATE 1")

    # -- the rows ------------------------------------------------------------------------

    async def requeue_queued(self, campaign_ids: Sequence[UUID] | None = None) -> int:
        """``queued`` -> ``pending`` (claim dropped) for the given campaigns, or all: their
        batches are gone, so they are routed again (one database serves one queue)."""
        result = await self._pool.execute(
            """
            WITH locked AS (
                SELECT r.id FROM whatsapp_campaign_recipients r
                JOIN whatsapp_campaigns c ON c.id = r.campaign_id
                WHERE r.status = 'queued' AND c.queued_count > 0
                  AND ($1::uuid[] IS NULL OR c.id = ANY($1::uuid[]))
                ORDER BY r.id FOR UPDATE OF r
            )
            UPDATE whatsapp_campaign_recipients r
            SET status = 'pending', claim_id = NULL, updated_at = now()
            FROM locked WHERE r.id = locked.id
            """,
            None if campaign_ids is None else list(campaign_ids),
        )
        return int(result.split()[-1])

    async def orphaned_sending(
        self,
        before: datetime | None,
        idle: timedelta,
        recipient_ids: Sequence[int] | None = None,
        campaign_ids: Sequence[UUID] | None = None,
    ) -> list[int]:
        """``sending`` rows (marked before ``before``, if given; among ``recipient_ids`` and
        of ``campaign_ids``, if given) that nobody touched for ``idle``: their batch is gone
        and no live actor holds them (a holder keeps its rows alive). Candidates only:
        :meth:`mark_in_doubt` checks again as it writes."""
        rows = await self._pool.fetch(
            """
            SELECT id FROM whatsapp_campaign_recipients
            WHERE campaign_id = ANY(ARRAY(
                      SELECT id FROM whatsapp_campaigns WHERE sending_count > 0))
              AND status = 'sending' AND ($1::timestamptz IS NULL OR sending_at < $1)
              AND updated_at < now() - $2::interval AND in_doubt_at IS NULL
              AND ($3::bigint[] IS NULL OR id = ANY($3::bigint[]))
              AND ($4::uuid[] IS NULL OR campaign_id = ANY($4::uuid[]))
            ORDER BY id
            """,
            before,
            idle,
            None if recipient_ids is None else list(recipient_ids),
            None if campaign_ids is None else list(campaign_ids),
        )
        return [row["id"] for row in rows]

    async def mark_in_doubt(self, recipient_ids: Sequence[int], idle: timedelta) -> int:
        """``sending`` rows whose batch is gone and that nobody holds: they may have reached
        Meta. Marked in doubt (from now), for their webhook or the in-doubt policy to settle;
        how many.

        "Nobody holds it" (untouched for ``idle``) is checked in this statement, not only
        when the candidates were read: a holder that touched its row meanwhile (its touch had
        failed once; it waits on a pair or a paused number) keeps it and sends it once."""
        if not recipient_ids:
            return 0
        result = await self._pool.execute(
            """
            UPDATE whatsapp_campaign_recipients
            SET in_doubt_at = now(), updated_at = now()
            WHERE id = ANY($1::bigint[]) AND status = 'sending' AND in_doubt_at IS NULL
              AND updated_at < now() - $2::interval
            """,
            list(recipient_ids),
            idle,
        )
        return int(result.split()[-1])
