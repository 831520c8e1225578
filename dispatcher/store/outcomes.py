"""What happened to messages: send results from instance actors, statuses from Meta's webhooks.

Both are applied in bulk (one statement for a whole batch) and are idempotent and
order-independent, so a flush retried after a crash, or webhooks arriving late, twice or
shuffled, leave the same rows and the same counters:

- the status only moves forward in the order pending < queued < sending < sent < delivered
  < read < failed (``failed`` is final; a late ``delivered`` after ``read`` changes nothing);
- timestamps keep the earliest value reported; ``sent_at`` is when Meta is first known to have
  accepted the message (any webhook implies it), which is what ``total_sent`` counts;
- a ``read`` with no ``delivered`` counts as delivered (``total_delivered`` counts both).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from dispatcher.store.models import WEBHOOK_STATUSES, SendResult, StatusUpdate

# Row locks are taken in id order (the "locked" CTEs), then the trigger locks campaign rows
# in id order: concurrent flushes never deadlock. The "locked" CTE carries the input rows
# and is joined to the table by primary key alone: prepared statements run on a generic
# plan that guesses 10 input rows, and a join of two CTEs was then a nested loop, quadratic
# in the batch (measured 4x slower at 500 rows).
_APPLY_RESULTS = """
WITH given AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::uuid[], $5::int[],
                         $6::text[], $7::int[], $8::text[], $11::text[], $12::int[])
        AS g(id, outcome, at, instance_id, attempts, wamid, error_code, error_message,
             error_details, retries)
), fence AS (
    -- The writer's epoch must still be its instance's current one (none given: unfenced).
    SELECT $10::bigint IS NULL OR coalesce(
        (SELECT epoch = $10 FROM whatsapp_instances WHERE id = $9::uuid), false) AS ok
), one AS (
    -- One result per recipient: a send that went through beats any other report.
    SELECT DISTINCT ON (id) * FROM given WHERE (SELECT ok FROM fence)
    ORDER BY id, (outcome = 'sent') DESC, at DESC
), locked AS (
    SELECT one.* FROM whatsapp_campaign_recipients r JOIN one ON one.id = r.id
    ORDER BY r.id FOR UPDATE OF r
)
UPDATE whatsapp_campaign_recipients r
SET status = CASE one.outcome
        WHEN 'sent' THEN greatest(r.status, 'sent')
        WHEN 'failed' THEN 'failed'
        WHEN 'in_doubt' THEN r.status
        ELSE 'pending' END,
    claim_id = CASE WHEN one.outcome = 'requeue' THEN NULL ELSE r.claim_id END,
    -- Only a row still 'sending' can be in doubt: every other outcome moves it on, so the
    -- in-doubt index holds the rows in doubt now, not every row that ever was.
    in_doubt_at = CASE WHEN one.outcome = 'in_doubt' THEN least(r.in_doubt_at, one.at)
                       ELSE NULL END,
    instance_id = coalesce(one.instance_id, r.instance_id),
    attempts = greatest(r.attempts, one.attempts),
    wamid = coalesce(r.wamid, one.wamid),
    sent_at = CASE WHEN one.outcome = 'sent' THEN least(r.sent_at, one.at) ELSE r.sent_at END,
    failed_at = CASE WHEN one.outcome = 'failed' THEN one.at ELSE r.failed_at END,
    error_code = CASE WHEN one.outcome IN ('sent', 'in_doubt') THEN r.error_code
                      ELSE one.error_code END,
    error_message = CASE WHEN one.outcome IN ('sent', 'in_doubt') THEN r.error_message
                         ELSE one.error_message END,
    error_details = CASE WHEN one.outcome IN ('sent', 'in_doubt') THEN r.error_details
                         ELSE one.error_details END,
    updated_at = now()
FROM locked one
WHERE r.id = one.id
  -- Not the late result of an attempt retried since (its failure came by webhook before
  -- this result was written): the row waits for its next attempt. Compared on the row's
  -- own retries, so a retry move that commits while this statement waits for the row's
  -- lock is seen (Postgres re-checks this condition on the row's newest version; a lookup
  -- in another table would read this statement's older snapshot).
  AND (r.retries = one.retries
       -- A result of a batch routed before the retries were carried: by its wamid.
       OR (one.retries IS NULL
           AND (one.outcome <> 'sent' OR r.retries = 0 OR one.wamid IS NULL
                OR NOT EXISTS (SELECT 1 FROM whatsapp_recipient_attempts a
                               WHERE a.recipient_id = r.id AND a.wamid = one.wamid))))
  AND ((one.outcome = 'sent')
       -- A failure or a give-back only from the row's holder (the writer named, at its
       -- epoch): a row requeued and taken by another sender since is no longer ours.
       OR (one.outcome = 'failed' AND r.status < 'sent' AND (
               $9::uuid IS NULL
               OR (r.instance_id = $9::uuid AND r.sender_epoch IS NOT DISTINCT FROM $10::bigint)))
       OR (one.outcome = 'requeue' AND r.status IN ('queued', 'sending') AND (
               $9::uuid IS NULL
               OR (r.instance_id = $9::uuid AND r.sender_epoch IS NOT DISTINCT FROM $10::bigint)))
       OR (one.outcome = 'in_doubt' AND r.status = 'sending'))
"""

_APPLY_STATUSES = """
WITH given AS (
    SELECT * FROM unnest($1::whatsapp_recipient_status[], $2::timestamptz[], $3::text[],
                         $4::bigint[], $5::int[], $6::text[], $7::text[], $8::int[])
        AS g(status, at, wamid, recipient_id, error_code, error_message, error_details,
             attempt)
), by_wamid AS (
    -- Ours only: a wamid we recorded, else the recipient id of our verified tag (the parser
    -- gives none for another sender's bare callback data). A wamid known here wins over the
    -- tag, so a status can never be steered to another row by its callback data.
    SELECT (SELECT w.id FROM whatsapp_campaign_recipients w
            WHERE g.wamid IS NOT NULL AND w.wamid = g.wamid LIMIT 1) AS wamid_row, g.*
    FROM given g
), matched AS (
    -- Each status with the attempt it is for (the row's retries): the row's current
    -- wamid's, or the one our tag names. A status of a retried attempt (a failed webhook
    -- delivered again, a late delivered or read) belongs to that attempt alone: it never
    -- moves the new one (migration 0018). A first-format tag names no attempt: then the
    -- retried attempts' wamids tell.
    -- (Each looked up by its index, row by row, LIMIT 1 keeping Postgres from turning the
    -- lookup into a join or a hashed subquery: either read the whole table.)
    SELECT r.id, r.retries, b.*
    FROM by_wamid b
    CROSS JOIN LATERAL (
        SELECT t.id, t.retries FROM whatsapp_campaign_recipients t
        WHERE t.id = coalesce(b.wamid_row, b.recipient_id) LIMIT 1
    ) r
    WHERE b.wamid_row IS NOT NULL
       OR b.attempt = r.retries
       OR (b.attempt IS NULL AND (b.wamid IS NULL OR (
               SELECT a.recipient_id FROM whatsapp_recipient_attempts a
               WHERE a.wamid = b.wamid AND a.retry_at IS NOT NULL LIMIT 1) IS NULL))
), folded AS (
    -- Every status of one message in this batch folded into one: the order they came in
    -- does not matter.
    SELECT id,
           max(retries) AS retries,
           max(status) AS status,
           min(at) AS accepted_at,
           min(at) FILTER (WHERE status = 'delivered') AS delivered_at,
           min(at) FILTER (WHERE status = 'read') AS read_at,
           min(at) FILTER (WHERE status = 'failed') AS failed_at,
           min(wamid) AS wamid,
           (array_agg(error_code ORDER BY at, error_code)
               FILTER (WHERE status = 'failed'))[1] AS error_code,
           (array_agg(error_message ORDER BY at, error_code)
               FILTER (WHERE status = 'failed'))[1] AS error_message,
           (array_agg(error_details ORDER BY at, error_code)
               FILTER (WHERE status = 'failed'))[1] AS error_details
    FROM matched GROUP BY id
), locked AS (
    SELECT folded.* FROM whatsapp_campaign_recipients r JOIN folded ON folded.id = r.id
    ORDER BY r.id FOR UPDATE OF r
)
UPDATE whatsapp_campaign_recipients r
SET status = greatest(r.status, f.status),
    -- A row that leaves 'sending' is settled: no longer in doubt.
    in_doubt_at = CASE WHEN greatest(r.status, f.status) = 'sending' THEN r.in_doubt_at
                       ELSE NULL END,
    wamid = coalesce(r.wamid, f.wamid),
    sent_at = least(r.sent_at, f.accepted_at),
    delivered_at = least(r.delivered_at, f.delivered_at),
    read_at = least(r.read_at, f.read_at),
    failed_at = least(r.failed_at, f.failed_at),
    error_code = CASE WHEN f.failed_at IS NULL THEN r.error_code
                      WHEN r.failed_at IS NULL OR f.failed_at < r.failed_at THEN f.error_code
                      ELSE r.error_code END,
    error_message = CASE WHEN f.failed_at IS NULL THEN r.error_message
                         WHEN r.failed_at IS NULL OR f.failed_at < r.failed_at
                             THEN f.error_message
                         ELSE r.error_message END,
    error_details = CASE WHEN f.failed_at IS NULL THEN r.error_details
                         WHEN r.failed_at IS NULL OR f.failed_at < r.failed_at
                             THEN f.error_details
                         ELSE r.error_details END,
    updated_at = now()
FROM locked f
-- Still the attempt the statuses are for. On the row itself, so a retry move that commits
-- while this statement waits for the row's lock is seen: Postgres re-checks this condition
-- on the row's newest version, while every lookup above read this statement's snapshot
-- (the old wamid still on the row, the retried attempt not recorded yet).
WHERE r.id = f.id AND r.retries = f.retries
"""


class Outcomes:
    """Bulk writers of send results and webhook statuses."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def apply_results(
        self,
        results: Sequence[SendResult],
        *,
        instance_id: UUID | None = None,
        epoch: int | None = None,
    ) -> int:
        """Record a batch of send results in one statement; returns the rows they changed.

        With ``epoch``, the statement first checks that it is still ``instance_id``'s current
        epoch: a replaced sender's results change nothing (0). Its sends, if Meta took them,
        are recorded by their status webhooks, which match by wamid or callback data.

        - ``SENT``: -> ``sent`` unless a webhook already moved it further (then the status
          stays); records wamid (first one kept), instance, attempts, ``sent_at``; counts
          in ``total_sent``, and enters the recipient in its portfolio's 24 h window.
        - ``FAILED``: ``pending``/``queued``/``sending`` -> ``failed`` with the error; ignored
          once Meta accepted the message (a webhook said so first).
        - ``REQUEUE``: ``queued``/``sending`` -> ``pending`` (claim dropped) with the last
          error, for the coordinator to route again; ignored in any other status.
        - With ``instance_id``, ``FAILED`` and ``REQUEUE`` change only rows that writer still
          holds (its instance and ``epoch`` on the row): one requeued and taken by another
          sender since is that sender's to settle.
        - ``IN_DOUBT``: stays ``sending``, marked in doubt since ``at`` (see
          ``store/fencing.py``: its webhook or the in-doubt policy settles it).
        """
        if not results:
            return 0
        result = await self._pool.execute(
            _APPLY_RESULTS,
            [r.recipient_id for r in results],
            [r.outcome.value for r in results],
            [r.at for r in results],
            [r.instance_id for r in results],
            [r.attempts for r in results],
            [r.wamid for r in results],
            [r.error_code for r in results],
            [r.error_message for r in results],
            instance_id,
            epoch,
            [r.error_details for r in results],
            [r.retries for r in results],
        )
        return int(result.split()[-1])

    async def apply_statuses(self, statuses: Sequence[StatusUpdate]) -> int:
        """Apply a batch of webhook statuses in one statement; returns the recipients matched.

        Matched by wamid, else by recipient id (taken only from our verified callback tag);
        statuses matching nothing (another system's messages on the same number) are
        dropped. Forward-only, see the module docstring: a
        ``failed`` after ``sent`` moves the row to ``failed`` (``total_sent`` keeps counting
        it, ``total_failed`` grows), a ``delivered`` after ``read`` only records its time.
        """
        if not statuses:
            return 0
        for update in statuses:
            if update.status not in WEBHOOK_STATUSES:
                raise ValueError(f"not a webhook status: {update.status}")
        result = await self._pool.execute(
            _APPLY_STATUSES,
            [s.status.value for s in statuses],
            [s.at for s in statuses],
            [s.wamid for s in statuses],
            [s.recipient_id for s in statuses],
            [s.error_code for s in statuses],
            [s.error_message for s in statuses],
            [s.error_details for s in statuses],
            [s.attempt for s in statuses],
        )
        return int(result.split()[-1])
