"""Fencing in Postgres: instance epochs, the coordinator lease, and in-doubt sends.

Every check is made in the same statement as the write it guards (never read, decide, then
write): a sender or a coordinator that lost its right to act changes nothing, however late
its statement arrives.

- An instance actor's incarnation takes the next epoch of its instance when it starts
  (:meth:`Epochs.start`); ``Recipients.hand_over`` and ``Outcomes.apply_results`` compare it.
- The coordinator lease (one row, database time): a ``dispatcher serve`` whose coordinator
  does not hold it serves the API and stands by; ``Recipients.claim_pending`` and
  :meth:`InDoubtRows.resolve` check the holder and its epoch.
- In-doubt rows (``sending`` with ``in_doubt_at``): settled by their status webhook
  (``Outcomes.apply_statuses`` moves them past ``sending``), or by :meth:`InDoubtRows.resolve`
  once the bound (``engine/in_doubt.py``) has passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from dispatcher.store.models import IN_DOUBT_FAILURE, InDoubtPolicy, LeaseState

LEASE_NAME = "coordinator"


class Epochs:
    """Instance epochs: which incarnation of an instance actor may send."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def start(self, instance_id: UUID) -> int:
        """The next epoch of ``instance_id``: every earlier incarnation is fenced from now on."""
        epoch = await self._pool.fetchval(
            "UPDATE whatsapp_instances SET epoch = epoch + 1 WHERE id = $1 RETURNING epoch",
            instance_id,
        )
        if epoch is None:
            raise LookupError(f"instance {instance_id} is not registered")
        return int(epoch)

    async def current(self, instance_id: UUID, epoch: int) -> bool:
        """True while ``epoch`` is still the instance's current one."""
        return bool(
            await self._pool.fetchval(
                "SELECT epoch = $2 FROM whatsapp_instances WHERE id = $1", instance_id, epoch
            )
        )


class CoordinatorLeases:
    """The one coordinator lease of a database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def acquire(self, holder: str, ttl_s: float) -> int | None:
        """Take or renew the lease for ``ttl_s``; its epoch, or None while another holds it.

        The holder keeps its epoch across renewals; a new holder (the lease had expired)
        gets the next one, which fences every claim of the previous holder.
        """
        epoch = await self._pool.fetchval(
            """
            INSERT INTO whatsapp_coordinator_lease AS l
                (name, holder, epoch, acquired_at, renewed_at, expires_at)
            VALUES ($1, $2, 1, now(), now(), now() + make_interval(secs => $3))
            ON CONFLICT (name) DO UPDATE
            SET epoch = CASE WHEN l.holder = excluded.holder THEN l.epoch ELSE l.epoch + 1 END,
                acquired_at = CASE WHEN l.holder = excluded.holder THEN l.acquired_at
                                   ELSE now() END,
                holder = excluded.holder,
                renewed_at = now(),
                expires_at = excluded.expires_at
            WHERE l.holder = excluded.holder OR l.expires_at <= now()
            RETURNING epoch
            """,
            LEASE_NAME,
            holder,
            ttl_s,
        )
        return None if epoch is None else int(epoch)

    async def release(self, holder: str) -> bool:
        """Let the lease go at once (a clean shutdown): a standby need not wait it out."""
        result = await self._pool.execute(
            "UPDATE whatsapp_coordinator_lease SET expires_at = now() "
            "WHERE name = $1 AND holder = $2",
            LEASE_NAME,
            holder,
        )
        return str(result).endswith(" 1")

    async def state(self) -> LeaseState | None:
        row = await self._pool.fetchrow(
            "SELECT holder, epoch, extract(epoch FROM expires_at - now())::float8 AS left_s "
            "FROM whatsapp_coordinator_lease WHERE name = $1",
            LEASE_NAME,
        )
        if row is None:
            return None
        return LeaseState(row["holder"], row["epoch"], row["left_s"])


class InDoubtRows:
    """Rows whose send's outcome is unknown."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def resolve(
        self,
        due_before: datetime,
        policy: InDoubtPolicy,
        lease: tuple[str, int] | None,
        campaign_ids: Sequence[UUID] | None = None,
    ) -> int:
        """Apply ``policy`` to rows still in doubt since before ``due_before`` (no webhook
        settled them); how many. ``resend``: back to ``pending`` for the coordinator to route
        again; ``fail_in_doubt``: ``failed``, the error message saying why
        (:data:`IN_DOUBT_FAILURE`, no code: final, never retried automatically). Only while
        ``lease`` (holder, epoch) is held, checked in this statement. ``campaign_ids``: only
        those campaigns' rows (None: every campaign's)."""
        result = await self._pool.execute(
            """
            WITH locked AS (
                SELECT id FROM whatsapp_campaign_recipients
                WHERE in_doubt_at IS NOT NULL AND in_doubt_at < $1 AND status = 'sending'
                  AND ($3::text IS NULL OR EXISTS (
                      SELECT 1 FROM whatsapp_coordinator_lease l
                      WHERE l.name = 'coordinator' AND l.holder = $3 AND l.epoch = $4
                        AND l.expires_at > now()))
                  AND ($5::uuid[] IS NULL OR campaign_id = ANY($5::uuid[]))
                ORDER BY id FOR UPDATE SKIP LOCKED
            )
            UPDATE whatsapp_campaign_recipients r
            SET status = CASE WHEN $2 = 'resend' THEN 'pending'::whatsapp_recipient_status
                              ELSE 'failed' END,
                claim_id = CASE WHEN $2 = 'resend' THEN NULL ELSE r.claim_id END,
                failed_at = CASE WHEN $2 = 'resend' THEN r.failed_at ELSE now() END,
                -- Failed in doubt: the code of an earlier try (a throttle, a 5xx) no longer
                -- says why, and a retry policy naming it must not resend what Meta may
                -- have taken.
                error_code = CASE WHEN $2 = 'resend' THEN r.error_code ELSE NULL END,
                error_details = CASE WHEN $2 = 'resend' THEN r.error_details ELSE NULL END,
                error_message = CASE WHEN $2 = 'resend' THEN r.error_message ELSE $6 END,
                in_doubt_at = NULL,
                updated_at = now()
            FROM locked WHERE r.id = locked.id
            """,
            due_before,
            policy.value,
            None if lease is None else lease[0],
            None if lease is None else lease[1],
            None if campaign_ids is None else list(campaign_ids),
            IN_DOUBT_FAILURE,
        )
        return int(result.split()[-1])

    async def of_instance(self, instance_id: UUID) -> int:
        """Rows in doubt now that ``instance_id`` sent (the partial index of rows in doubt
        now keeps this cheap: they are few)."""
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM whatsapp_campaign_recipients "
                "WHERE in_doubt_at IS NOT NULL AND status = 'sending' AND instance_id = $1",
                instance_id,
            )
        )

    async def count(self) -> int:
        """Rows in doubt now (in every campaign)."""
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM whatsapp_campaign_recipients "
                "WHERE in_doubt_at IS NOT NULL AND status = 'sending'"
            )
        )
