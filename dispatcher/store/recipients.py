"""Campaign recipients: streaming ingest, claims, hand-over to instances, lookups.

The statuses a recipient moves through, and which method moves it:

- ``ingest`` inserts ``pending`` rows, and ``duplicate`` ones (final, never sent) for
  addresses the campaign already has (ingest.py);
- ``claim_pending``: ``pending`` -> ``queued`` (a batch, under a new ``claim_id``);
- ``hand_over`` / ``mark_sending``: ``queued`` rows of that claim -> ``sending`` (with the
  instance and its epoch); rows another sender left ``sending`` are marked in doubt;
- ``requeue``: ``queued`` rows of one claim -> ``pending``; ``requeue_held``: a sender's own
  ``sending`` rows -> ``pending``; ``requeue_stale``: untouched ``queued`` rows -> ``pending``
  (stale ``sending`` rows may have reached Meta: they are marked in doubt instead,
  ``Recovery.mark_in_doubt``);
- ``Outcomes.apply_results`` and ``Outcomes.apply_statuses`` (outcomes.py): the rest.

Campaign counters follow every move: the database keeps them (see the migration).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg

from dispatcher.errors import StoreError
from dispatcher.store.ingest import ingest
from dispatcher.store.models import (
    Claim,
    ClaimedRecipient,
    HandOver,
    Ingested,
    NewRecipient,
    Recipient,
    RecipientStatus,
)
from dispatcher.uploads import UploadLimits

COLUMNS = (
    "id, campaign_id, phone, user_id, variables, status, claim_id, attempts, instance_id, "
    "wamid, error_code, error_message, error_details, created_at, updated_at, queued_at, "
    "sending_at, sent_at, delivered_at, read_at, failed_at"
)


def recipient(row: Mapping[str, Any]) -> Recipient:
    return Recipient(
        id=row["id"],
        campaign_id=row["campaign_id"],
        phone=row["phone"],
        user_id=row["user_id"],
        variables=row["variables"],
        status=RecipientStatus(row["status"]),
        claim_id=row["claim_id"],
        attempts=row["attempts"],
        instance_id=row["instance_id"],
        wamid=row["wamid"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        error_details=row["error_details"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        queued_at=row["queued_at"],
        sending_at=row["sending_at"],
        sent_at=row["sent_at"],
        delivered_at=row["delivered_at"],
        read_at=row["read_at"],
        failed_at=row["failed_at"],
    )


class Recipients:
    """Recipient rows; every method is one round trip, whatever the number of rows."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ingest(
        self,
        campaign_id: UUID,
        rows: Iterable[NewRecipient] | AsyncIterable[NewRecipient],
        limits: UploadLimits | None = None,
    ) -> Ingested:
        """Append recipients from a (possibly async) stream, one message per address: see
        :func:`dispatcher.store.ingest.ingest`."""
        return await ingest(self._pool, campaign_id, rows, limits)

    async def claim_pending(
        self, campaign_id: UUID, limit: int, *, lease: tuple[str, int] | None = None
    ) -> Claim | None:
        """Up to ``limit`` pending recipients that are due (``not_before`` passed: see
        migration 0015), earliest due first, then oldest, moved to ``queued`` under a new
        ``claim_id``; None when there are none or the campaign is not ``running`` (or is past
        its ``expires_at``: migration 0017).

        ``FOR UPDATE SKIP LOCKED``: concurrent claimers never get the same recipient and never
        wait on each other (past three racing on the same oldest rows, one may get fewer,
        or None: it claims again on its next round). ``lease`` (holder, epoch): claim only
        while that coordinator lease is held and unexpired, checked in this statement (see
        ``store/fencing.py``).
        """
        rows = await self._pool.fetch(
            """
            WITH claim AS MATERIALIZED (SELECT nextval('whatsapp_claim_seq') AS claim_id),
            picked AS (
                -- The candidates first, from the due index alone (0015: pending rows by
                -- campaign_id, not_before, id; before it, (campaign_id, status, id)): with
                -- FOR UPDATE on the same scan the planner walked the primary key from the
                -- table's first id instead, discarding every row of other campaigns and
                -- every sent one (7 million at 10 million rows; make bench-scale). Locked
                -- and checked again after: another claimer may have taken some meanwhile.
                -- Four batches of candidates: up to three claimers racing on the same
                -- oldest rows (skipped, locked) still leave this one a full batch.
                SELECT r.id FROM whatsapp_campaign_recipients r
                WHERE r.id = ANY(ARRAY(
                          SELECT p.id FROM whatsapp_campaign_recipients p
                          WHERE p.campaign_id = $1 AND p.status = 'pending'
                            AND p.not_before <= now()
                          ORDER BY p.not_before, p.id LIMIT 4 * $2))
                  AND r.campaign_id = $1 AND r.status = 'pending' AND r.not_before <= now()
                  AND EXISTS (SELECT 1 FROM whatsapp_campaigns c
                              WHERE c.id = $1 AND c.status = 'running'
                                AND (c.expires_at IS NULL OR c.expires_at > now()))
                  AND ($3::text IS NULL OR EXISTS (
                      SELECT 1 FROM whatsapp_coordinator_lease l
                      WHERE l.name = 'coordinator' AND l.holder = $3 AND l.epoch = $4
                        AND l.expires_at > now()))
                ORDER BY r.not_before, r.id
                LIMIT $2
                FOR UPDATE OF r SKIP LOCKED
            )
            UPDATE whatsapp_campaign_recipients r
            SET status = 'queued', claim_id = claim.claim_id, queued_at = now(), updated_at = now(),
                -- A/B (0016): once a winner is decided, what is claimed gets its template.
                variant = coalesce((SELECT w.variant FROM whatsapp_variant_winners w
                                    WHERE w.campaign_id = $1), r.variant)
            FROM picked, claim
            WHERE r.id = picked.id
            RETURNING r.id, r.claim_id, r.phone, r.user_id, r.variables, r.attempts, r.variant,
                      r.retries
            """,
            campaign_id,
            limit,
            None if lease is None else lease[0],
            None if lease is None else lease[1],
        )
        if not rows:
            return None
        rows = sorted(rows, key=lambda row: row["id"])
        return Claim(
            claim_id=rows[0]["claim_id"],
            campaign_id=campaign_id,
            recipients=[
                ClaimedRecipient(
                    id=row["id"],
                    phone=row["phone"],
                    user_id=row["user_id"],
                    variables=row["variables"],
                    attempts=row["attempts"],
                    variant=row["variant"],
                    retries=row["retries"],
                )
                for row in rows
            ],
        )

    async def mark_sending(
        self,
        claim_id: int,
        recipient_ids: Sequence[int],
        instance_id: UUID,
        epoch: int | None = None,
    ) -> list[int]:
        """The ids :meth:`hand_over` moved to ``sending``: send those and only those."""
        return (await self.hand_over(claim_id, recipient_ids, instance_id, epoch)).moved

    async def hand_over(
        self,
        claim_id: int,
        recipient_ids: Sequence[int],
        instance_id: UUID,
        epoch: int | None = None,
    ) -> HandOver:
        """Give a batch's rows to one sender (``instance_id`` at ``epoch``), in one statement
        that checks the epoch is still the instance's current one (None: not checked).

        Only rows still in claim ``claim_id`` are considered: a batch reclaimed after its
        recipients were requeued and claimed again elsewhere gets nothing. Of those,
        ``queued`` rows move to ``sending`` (send them); rows another sender (another
        instance or an earlier epoch) left ``sending`` may have reached Meta: they are marked
        in doubt, not sent; rows this very sender already holds (the same batch read again,
        or enqueued twice) are left alone and listed in ``already_mine``. A fenced sender
        moves nothing.
        """
        row = await self._pool.fetchrow(
            """
            WITH fence AS (
                SELECT $4::bigint IS NULL OR coalesce(
                    (SELECT epoch = $4 FROM whatsapp_instances WHERE id = $3), false) AS ok
            ), locked AS (
                SELECT r.id, r.status AS was FROM whatsapp_campaign_recipients r
                WHERE r.id = ANY($2::bigint[]) AND r.claim_id = $1
                  AND (SELECT ok FROM fence)
                ORDER BY r.id FOR UPDATE
            ), moved AS (
                UPDATE whatsapp_campaign_recipients r
                SET status = 'sending',
                    instance_id = CASE WHEN l.was = 'queued' THEN $3 ELSE r.instance_id END,
                    sender_epoch = CASE WHEN l.was = 'queued' THEN $4 ELSE r.sender_epoch END,
                    sending_at = CASE WHEN l.was = 'queued' THEN now() ELSE r.sending_at END,
                    in_doubt_at = CASE WHEN l.was = 'queued' THEN NULL
                                       ELSE coalesce(r.in_doubt_at, now()) END,
                    updated_at = now()
                FROM locked l
                WHERE r.id = l.id
                  AND (l.was = 'queued'
                       OR (l.was = 'sending'
                           AND (r.instance_id IS DISTINCT FROM $3
                                OR r.sender_epoch IS DISTINCT FROM $4::bigint)))
                RETURNING r.id, l.was
            )
            SELECT (SELECT ok FROM fence) AS ok,
                   array(SELECT id FROM moved WHERE was = 'queued' ORDER BY id) AS moved,
                   array(SELECT id FROM moved WHERE was = 'sending' ORDER BY id) AS in_doubt,
                   array(SELECT l.id FROM locked l JOIN whatsapp_campaign_recipients r
                                ON r.id = l.id
                         WHERE l.was = 'sending' AND r.instance_id = $3
                           AND r.sender_epoch IS NOT DISTINCT FROM $4::bigint
                           AND r.in_doubt_at IS NULL
                         ORDER BY l.id) AS already_mine
            """,
            claim_id,
            list(recipient_ids),
            instance_id,
            epoch,
        )
        if row is None:
            raise StoreError("claim", claim_id, "hand-over returned no row")
        return HandOver(
            fenced=not row["ok"],
            moved=list(row["moved"]),
            in_doubt=list(row["in_doubt"]),
            already_mine=list(row["already_mine"]),
        )

    async def requeue(self, claim_id: int, recipient_ids: Sequence[int]) -> int:
        """A batch given back unsent (drained from a stream, deferred at the gate): its rows
        still ``queued`` in claim ``claim_id`` -> ``pending``; returns how many.

        Scoped to the claim and to ``queued``: a copy of the batch read from the stream after
        a sender took it (rows ``sending``) or after its rows were requeued and claimed again
        (another claim) changes nothing, so a row in someone's hands is never routed twice.
        """
        result = await self._pool.execute(
            """
            WITH locked AS (
                SELECT id FROM whatsapp_campaign_recipients
                WHERE id = ANY($2::bigint[]) AND claim_id = $1 AND status = 'queued'
                ORDER BY id FOR UPDATE
            )
            UPDATE whatsapp_campaign_recipients r
            SET status = 'pending', claim_id = NULL, updated_at = now()
            FROM locked
            WHERE r.id = locked.id AND r.claim_id = $1 AND r.status = 'queued'
            """,
            claim_id,
            list(recipient_ids),
        )
        return int(result.split()[-1])

    async def requeue_held(
        self, recipient_ids: Sequence[int], instance_id: UUID, epoch: int | None
    ) -> int:
        """A sender's own unsent rows -> ``pending``: only ``sending`` rows it holds (its
        ``instance_id`` and ``epoch``, as :meth:`hand_over` recorded them) and not in doubt;
        returns how many.

        Rows another sender or a later epoch of this one took are left alone: they are in
        that sender's hands now (or in doubt), and giving them back would route them twice.
        """
        result = await self._pool.execute(
            """
            WITH locked AS (
                SELECT id FROM whatsapp_campaign_recipients
                WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE
            )
            UPDATE whatsapp_campaign_recipients r
            SET status = 'pending', claim_id = NULL, updated_at = now()
            FROM locked
            WHERE r.id = locked.id AND r.status = 'sending' AND r.in_doubt_at IS NULL
              AND r.instance_id = $2 AND r.sender_epoch IS NOT DISTINCT FROM $3::bigint
            """,
            list(recipient_ids),
            instance_id,
            epoch,
        )
        return int(result.split()[-1])

    async def revive(self, recipient_ids: Sequence[int]) -> list[UUID]:
        """``failed`` -> ``pending`` for messages that never reached Meta (dead-lettered
        after their retries ran out), so they are routed again; returns their campaigns.

        A message Meta accepted (``sent_at`` set) stays failed: reviving it would send twice.
        Its attempts start again: revived with its old count, it would die at its first error.
        """
        rows = await self._pool.fetch(
            """
            WITH locked AS (
                SELECT id FROM whatsapp_campaign_recipients
                WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE
            )
            UPDATE whatsapp_campaign_recipients r
            SET status = 'pending', claim_id = NULL, attempts = 0,
                error_code = NULL, error_message = NULL, error_details = NULL,
                failed_at = NULL, updated_at = now()
            FROM locked
            WHERE r.id = locked.id AND r.status = 'failed' AND r.sent_at IS NULL
            RETURNING r.campaign_id
            """,
            list(recipient_ids),
        )
        return sorted({row["campaign_id"] for row in rows})

    async def in_flight_for_portfolio(self, business_id: str) -> list[tuple[str, float]]:
        """``(recipient, seconds since it was routed)`` for messages routed but not yet sent
        in campaigns that use any number of the portfolio, whatever the campaign's status
        (a held or cancelled campaign's ``sending`` rows may still reach Meta, or be resent
        once in doubt): they hold a slot of its 24 h window that the sent-contacts table does
        not show yet."""
        rows = await self._pool.fetch(
            """
            SELECT coalesce(r.phone, r.user_id) AS recipient,
                   extract(epoch FROM now() - coalesce(r.sending_at, r.queued_at, now()))::float8
                       AS age_s
            FROM whatsapp_campaigns c
            JOIN whatsapp_campaign_recipients r
              ON r.campaign_id = c.id AND r.status IN ('queued', 'sending')
            WHERE (c.queued_count > 0 OR c.sending_count > 0)
              AND c.instance_ids && ARRAY(
                  SELECT id FROM whatsapp_instances WHERE business_id = $1)
            """,
            business_id,
        )
        return [(row["recipient"], max(0.0, row["age_s"])) for row in rows]

    async def keep_alive(self, recipient_ids: Sequence[int]) -> int:
        """Mark ``queued``/``sending`` rows as still in someone's hands (their ``updated_at``
        is now), so :meth:`requeue_stale` leaves them alone; how many."""
        result = await self._pool.execute(
            """
            UPDATE whatsapp_campaign_recipients SET updated_at = now()
            WHERE id = ANY($1::bigint[]) AND status IN ('queued', 'sending')
            """,
            list(recipient_ids),
        )
        return int(result.split()[-1])

    async def requeue_stale(self, campaign_id: UUID, older_than: timedelta) -> int:
        """Requeue a campaign's ``queued`` rows untouched for ``older_than``.

        The safety net for batches that vanished from Redis (a cleared queue): no recipient
        stays queued forever. Returns how many moved back to ``pending``. Stale ``sending``
        rows are not touched: they may have reached Meta, so they go through the in-doubt path
        (``engine/recovery.py`` ``orphans_in_doubt``), never straight back to pending.
        """
        result = await self._pool.execute(
            """
            WITH locked AS (
                SELECT id FROM whatsapp_campaign_recipients
                WHERE campaign_id = $1 AND status = 'queued'
                  AND updated_at < now() - $2::interval AND in_doubt_at IS NULL
                ORDER BY id FOR UPDATE SKIP LOCKED
            )
            UPDATE whatsapp_campaign_recipients r
            SET status = 'pending', claim_id = NULL, updated_at = now()
            FROM locked WHERE r.id = locked.id
            """,
            campaign_id,
            older_than,
        )
        return int(result.split()[-1])

    async def statuses(self, recipient_ids: Sequence[int]) -> dict[int, RecipientStatus]:
        """The current status of each id (missing ids are absent): one query per batch."""
        rows = await self._pool.fetch(
            "SELECT id, status FROM whatsapp_campaign_recipients WHERE id = ANY($1::bigint[])",
            list(recipient_ids),
        )
        return {row["id"]: RecipientStatus(row["status"]) for row in rows}

    async def get(self, recipient_id: int) -> Recipient | None:
        row = await self._pool.fetchrow(
            f"SELECT {COLUMNS} FROM whatsapp_campaign_recipients WHERE id = $1", recipient_id
        )
        return None if row is None else recipient(row)

    async def by_wamid(self, wamid: str) -> Recipient | None:
        row = await self._pool.fetchrow(
            f"SELECT {COLUMNS} FROM whatsapp_campaign_recipients WHERE wamid = $1 LIMIT 1", wamid
        )
        return None if row is None else recipient(row)

    async def page(
        self,
        campaign_id: UUID,
        *,
        status: RecipientStatus | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[Recipient]:
        """A page of a campaign's recipients in id order (keyset: pass the last id seen)."""
        # Two statements, not "$2 IS NULL OR status = $2": a generic plan of that could not
        # use the (campaign_id, status, id) index. The page's ids come from an index alone
        # (campaign_id, id) or (campaign_id, status, id), then its rows by primary key: one
        # statement reading the rows in id order was planned along the primary key from
        # the table's first id, through every earlier campaign's rows (make bench-scale).
        if status is None:
            rows = await self._pool.fetch(
                f"""
                SELECT {COLUMNS} FROM whatsapp_campaign_recipients
                WHERE id = ANY(ARRAY(
                    SELECT id FROM whatsapp_campaign_recipients
                    WHERE campaign_id = $1 AND id > $2 ORDER BY id LIMIT $3))
                ORDER BY id
                """,
                campaign_id,
                after_id,
                limit,
            )
        else:
            rows = await self._pool.fetch(
                f"""
                SELECT {COLUMNS} FROM whatsapp_campaign_recipients
                WHERE id = ANY(ARRAY(
                    SELECT id FROM whatsapp_campaign_recipients
                    WHERE campaign_id = $1 AND status = $2 AND id > $3 ORDER BY id LIMIT $4))
                ORDER BY id
                """,
                campaign_id,
                status.value,
                after_id,
                limit,
            )
        return [recipient(row) for row in rows]

    async def count_by_status(self, campaign_id: UUID) -> dict[RecipientStatus, int]:
        """Counted from the rows themselves (an index-only scan): the ground truth the
        campaign's counters are kept equal to. Prefer the counters for a live view."""
        rows = await self._pool.fetch(
            "SELECT status, count(*) AS n FROM whatsapp_campaign_recipients "
            "WHERE campaign_id = $1 GROUP BY status",
            campaign_id,
        )
        counts = dict.fromkeys(RecipientStatus, 0)
        counts.update({RecipientStatus(row["status"]): row["n"] for row in rows})
        return counts
