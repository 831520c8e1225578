"""Automatic retries in the store: failures waiting for a decision, the retry move, attempts.

Whatever statement fails a recipient, migration 0018's trigger notes the row in the retry
inbox in that statement. The retry sweep (``engine/auto_retry.py``) reads the inbox with each
row's failure and its campaign's policy, decides in Python (``dispatcher/retry_policy.py``)
and hands the decisions to :meth:`Attempts.settle`, which in one transaction records each
failed attempt, moves the retried rows back to ``pending`` (due after their delay) and
empties the inbox of what it read.

The move is exactly once: it happens only while the row is still ``failed`` at the retry
count the decision was made for, and the attempt's key is (recipient, attempt number). A
failed webhook delivered twice finds the row already failed (no second inbox entry) or,
once retried, names an earlier attempt than the row's (its callback tag, or its wamid no
longer on the row) and is dropped (``outcomes.py``), as is a late ``delivered``, ``read`` or
send result of the old attempt, even one waiting for the row's lock while the move commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from dispatcher.store.models import CampaignStatus, RecipientStatus

REOPENED_FOR_RETRY = "reopened: a failure reported after it completed is retried automatically"
"""The status reason of a completed campaign a late failure (a 131049 webhook hours later)
ran again for its retry: shown while it runs and kept once it completes again, so the
console, the CLI and the completion alert say why it ran twice."""

RETRY_WAITING = """(SELECT count(*) FROM whatsapp_campaign_recipients w
    WHERE w.campaign_id = whatsapp_campaigns.id AND w.status = 'pending' AND w.retries > 0)
    AS retry_waiting"""
"""A campaign column: its rows waiting for (or due for) a retry, from a tiny partial index."""


@dataclass(frozen=True, slots=True)
class FailedRow:
    """A failure the sweep has to decide on."""

    recipient_id: int
    seq: int
    campaign_id: UUID
    campaign_status: CampaignStatus
    retry_policy: dict[str, Any] | None
    status: RecipientStatus
    retries: int
    error_code: int | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class Decided:
    """The sweep's answer for one row: retry after ``delay_s``, or None (final)."""

    row: FailedRow
    delay_s: float | None


@dataclass(frozen=True, slots=True)
class Settled:
    recorded: int
    """Attempts recorded (retried or final)."""
    retried: list[int]
    """Recipients moved back to pending."""
    reopened: list[UUID]
    """Completed campaigns running again for a retry."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a recipient: a closed one (recorded), or its current one."""

    attempt: int
    instance_id: UUID | None
    wamid: str | None
    sends: int
    status: RecipientStatus
    """``failed`` for a recorded attempt; the row's status for the current one."""
    error_code: int | None
    error_message: str | None
    error_details: str | None
    sent_at: datetime | None
    failed_at: datetime | None
    retry_at: datetime | None
    """When the next attempt became due; None on the last (or current) attempt."""


_UNDECIDED = """
SELECT i.recipient_id, i.seq, i.campaign_id, c.status AS campaign_status, c.retry_policy,
       r.status, r.retries, r.error_code, r.error_message
FROM whatsapp_retry_inbox i
JOIN whatsapp_campaign_recipients r ON r.id = i.recipient_id
JOIN whatsapp_campaigns c ON c.id = i.campaign_id
ORDER BY i.seq
LIMIT $1
"""

# Locked in id order, then re-checked: only a row still failed at the retries the decision
# was made for moves (a second sweep of the same failure, or a revive meanwhile, moves
# nothing). The INSERT reads the row as it was before the UPDATE (one snapshot).
_SETTLE = """
WITH given AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::float8[]) AS g(id, retries, delay_s)
), locked AS (
    SELECT g.* FROM whatsapp_campaign_recipients r JOIN given g ON g.id = r.id
    WHERE r.status = 'failed' AND r.retries = g.retries
    ORDER BY r.id FOR UPDATE OF r
), recorded AS (
    INSERT INTO whatsapp_recipient_attempts
        (recipient_id, attempt, instance_id, wamid, sends, error_code, error_message,
         error_details, sent_at, failed_at, retry_at)
    SELECT r.id, r.retries + 1, r.instance_id, r.wamid, r.attempts, r.error_code,
           r.error_message, r.error_details, r.sent_at, r.failed_at,
           now() + make_interval(secs => l.delay_s)
    FROM locked l JOIN whatsapp_campaign_recipients r ON r.id = l.id
    -- Taken again only by a row revived by hand (retry_dlq) that failed again: the newer.
    ON CONFLICT (recipient_id, attempt) DO UPDATE
    SET instance_id = excluded.instance_id, wamid = excluded.wamid, sends = excluded.sends,
        error_code = excluded.error_code, error_message = excluded.error_message,
        error_details = excluded.error_details, sent_at = excluded.sent_at,
        failed_at = excluded.failed_at, retry_at = excluded.retry_at, recorded_at = now()
    RETURNING recipient_id
), moved AS (
    -- A fresh attempt: the counters of 0001 take it out of total_failed (and total_sent if
    -- Meta had accepted it) and into pending_count. It is claimed again through the due
    -- index once not_before passes, like any pending row: the pair rate, the portfolio's
    -- messaging limit and the windows apply as to a first send. The 24 h unique-customer
    -- window: the coordinator's gate reserves a slot for the retry unless the recipient is
    -- still in the portfolio's window (whatsapp_portfolio_contacts, last accepted send within
    -- 24 h); sent_at is cleared here, so when Meta accepts the retry 0001's trigger moves
    -- its last_sent_at on. A 131049 retried a day later is thus a new unique customer again;
    -- a transient exhaustion (never accepted) counts as its first send would have.
    UPDATE whatsapp_campaign_recipients r
    SET status = 'pending', retries = r.retries + 1,
        not_before = now() + make_interval(secs => l.delay_s),
        claim_id = NULL, sender_epoch = NULL, in_doubt_at = NULL, attempts = 0, wamid = NULL,
        error_code = NULL, error_message = NULL, error_details = NULL,
        queued_at = NULL, sending_at = NULL, sent_at = NULL, delivered_at = NULL,
        read_at = NULL, failed_at = NULL, updated_at = now()
    FROM locked l
    WHERE r.id = l.id AND l.delay_s IS NOT NULL
    RETURNING r.id, r.campaign_id
)
SELECT (SELECT count(*) FROM recorded) AS recorded,
       array(SELECT id FROM moved ORDER BY id) AS retried,
       array(SELECT DISTINCT campaign_id FROM moved) AS campaigns
"""


class Attempts:
    """The retry inbox, the retry move and every recipient's attempts."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def undecided(self, limit: int = 500) -> list[FailedRow]:
        """Failures noted and not yet settled, oldest first, with what deciding needs."""
        rows = await self._pool.fetch(_UNDECIDED, limit)
        return [
            FailedRow(
                recipient_id=row["recipient_id"],
                seq=row["seq"],
                campaign_id=row["campaign_id"],
                campaign_status=CampaignStatus(row["campaign_status"]),
                retry_policy=row["retry_policy"],
                status=RecipientStatus(row["status"]),
                retries=row["retries"],
                error_code=row["error_code"],
                error_message=row["error_message"],
            )
            for row in rows
        ]

    async def settle(self, decided: Sequence[Decided]) -> Settled:
        """Record each failed attempt and carry out each decision, in one transaction.

        Rows no longer failed (revived meanwhile) are skipped; their inbox entries go too. A
        completed campaign given a retry (its failure came by webhook after it completed)
        runs again until the retry is settled, its status reason saying so
        (:data:`REOPENED_FOR_RETRY`).
        """
        if not decided:
            return Settled(0, [], [])
        failed = [d for d in decided if d.row.status is RecipientStatus.FAILED]
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                _SETTLE,
                [d.row.recipient_id for d in failed],
                [d.row.retries for d in failed],
                [d.delay_s for d in failed],
            )
            await conn.execute(
                """
                DELETE FROM whatsapp_retry_inbox i
                USING unnest($1::bigint[], $2::bigint[]) AS g(id, seq)
                WHERE i.recipient_id = g.id AND i.seq = g.seq
                """,
                [d.row.recipient_id for d in decided],
                [d.row.seq for d in decided],
            )
            reopened = await conn.fetch(
                """
                UPDATE whatsapp_campaigns
                SET status = 'running', status_reason = $2, finished_at = NULL,
                    updated_at = now()
                WHERE id = ANY($1::uuid[]) AND status = 'completed'
                RETURNING id
                """,
                list(row["campaigns"]),
                REOPENED_FOR_RETRY,
            )
        return Settled(row["recorded"], list(row["retried"]), [r["id"] for r in reopened])

    async def of_recipient(self, recipient_id: int) -> list[Attempt]:
        """Every attempt of a recipient, first to current (the current one from its row)."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """
                SELECT attempt, instance_id, wamid, sends, error_code, error_message,
                       error_details, sent_at, failed_at, retry_at
                FROM whatsapp_recipient_attempts WHERE recipient_id = $1 ORDER BY attempt
                """,
                recipient_id,
            )
            current = await conn.fetchrow(
                """
                SELECT retries + 1 AS attempt, instance_id, wamid, attempts AS sends, status,
                       error_code, error_message, error_details, sent_at, failed_at
                FROM whatsapp_campaign_recipients WHERE id = $1
                """,
                recipient_id,
            )
        attempts = [_attempt(row, RecipientStatus.FAILED) for row in rows]
        if current is not None and (not attempts or attempts[-1].attempt < current["attempt"]):
            attempts.append(_attempt(current, RecipientStatus(current["status"])))
        return attempts

    async def undecided_count(self, campaign_id: UUID) -> int:
        """Failures of the campaign the sweep has not decided on yet."""
        value = await self._pool.fetchval(
            "SELECT count(*) FROM whatsapp_retry_inbox WHERE campaign_id = $1", campaign_id
        )
        return int(value)


def _attempt(row: Mapping[str, Any], status: RecipientStatus) -> Attempt:
    return Attempt(
        attempt=row["attempt"],
        instance_id=row["instance_id"],
        wamid=row["wamid"],
        sends=row["sends"],
        status=status,
        error_code=row["error_code"],
        error_message=row["error_message"],
        error_details=row["error_details"],
        sent_at=row["sent_at"],
        failed_at=row["failed_at"],
        retry_at=row.get("retry_at"),
    )
