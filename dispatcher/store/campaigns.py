"""Campaigns: creation, their lifecycle (validated in SQL) and their live counters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from dispatcher.store.attempts import RETRY_WAITING
from dispatcher.store.ingest import apply
from dispatcher.store.models import Campaign, CampaignStatus
from dispatcher.store.staging import StagedUpload

_COLUMNS = (
    "id, name, status, status_reason, template, instance_ids, scheduled_at, total_recipients, "
    "total_sent, total_delivered, total_read, total_failed, total_duplicates, pending_count, "
    "queued_count, sending_count, created_at, updated_at, started_at, finished_at, hold_kind, "
    "total_suppressed, total_invalid, send_window, expires_at, max_per_minute, total_expired, "
    "retry_policy, ab_test, " + RETRY_WAITING
)

S = CampaignStatus
# Which statuses a campaign may move to each status from: the one table of the lifecycle.
TRANSITIONS: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    S.SCHEDULED: frozenset({S.DRAFT}),
    S.RUNNING: frozenset({S.DRAFT, S.SCHEDULED, S.PAUSED, S.HELD}),
    S.PAUSED: frozenset({S.RUNNING, S.SCHEDULED}),
    S.HELD: frozenset({S.RUNNING}),
    S.COMPLETED: frozenset({S.RUNNING}),
    S.CANCELLED: frozenset({S.DRAFT, S.SCHEDULED, S.RUNNING, S.PAUSED, S.HELD}),
    S.FAILED: frozenset({S.DRAFT, S.SCHEDULED, S.RUNNING, S.PAUSED, S.HELD}),
}
FINAL = frozenset({S.COMPLETED, S.CANCELLED, S.FAILED})

# A stored template names its language as a string or as Meta's {"code": ...}. A campaign of
# A/B variants (0016) sends each variant's template: any of them matches.
_TEMPLATE_MATCH = """((template->>'name' = $1
    AND ($2::text IS NULL
         OR coalesce(template->'language'->>'code', template->>'language') = $2))
    OR EXISTS (SELECT 1 FROM jsonb_array_elements(ab_test->'variants') v
               WHERE v->'template'->>'name' = $1
                 AND ($2::text IS NULL
                      OR coalesce(v->'template'->'language'->>'code',
                                  v->'template'->>'language') = $2)))"""


# A template belongs to one WABA (a webhook's entry id): only campaigns sending through one of
# its numbers match. A campaign none of whose numbers has a known WABA (registered without
# waba_id) cannot be placed, so it matches by name and language alone, as before WABAs were
# recorded: a hold it should not get is safer than sends of a paused template.
_WABA_MATCH = """($%(n)d::text IS NULL
    OR EXISTS (SELECT 1 FROM whatsapp_instances i
               WHERE i.id = ANY(instance_ids) AND i.waba_id = $%(n)d)
    OR NOT EXISTS (SELECT 1 FROM whatsapp_instances i
                   WHERE i.id = ANY(instance_ids) AND i.waba_id IS NOT NULL))"""


# The released template's rows of whatsapp_paused_templates (``p``): $1 name, $2 language (None:
# any), $3 WABA (None: any); a row of no language or no WABA is released by any.
_UNPAUSED = """p.name = $1 AND ($2::text IS NULL OR p.language IN ($2, ''))
    AND ($3::text IS NULL OR p.waba_id IN ($3, ''))"""

# Whether campaign ``c`` still sends a template known paused (``p``) other than the one
# released: its live templates are its own (no variants), every variant's, or the winner's
# once recorded; a paused row matches by name, language ('' any) and WABA ('' any; a
# campaign with no number of known WABA is judged in the releasing webhook's WABA, $3: another
# WABA's pause of a template of the same name would otherwise keep it held).
_STILL_PAUSED = f"""EXISTS (
    SELECT 1 FROM whatsapp_paused_templates p,
        LATERAL (SELECT c.template AS t WHERE c.ab_test IS NULL
                 UNION ALL
                 SELECT v.value->'template' FROM jsonb_array_elements(c.ab_test->'variants')
                     WITH ORDINALITY AS v (value, i)
                 WHERE NOT EXISTS (SELECT 1 FROM whatsapp_variant_winners w
                                   WHERE w.campaign_id = c.id AND w.variant <> v.i - 1)) live
    WHERE NOT ({_UNPAUSED})
      AND p.name = live.t->>'name'
      AND (p.language = ''
           OR p.language = coalesce(live.t->'language'->>'code', live.t->>'language'))
      AND (p.waba_id = ''
           OR EXISTS (SELECT 1 FROM whatsapp_instances i
                      WHERE i.id = ANY(c.instance_ids) AND i.waba_id = p.waba_id)
           OR (p.waba_id = $3
               AND NOT EXISTS (SELECT 1 FROM whatsapp_instances i
                               WHERE i.id = ANY(c.instance_ids) AND i.waba_id IS NOT NULL))))"""


def _campaign(row: Mapping[str, Any]) -> Campaign:
    return Campaign(
        id=row["id"],
        name=row["name"],
        status=CampaignStatus(row["status"]),
        status_reason=row["status_reason"],
        template=row["template"],
        instance_ids=list(row["instance_ids"]),
        scheduled_at=row["scheduled_at"],
        total_recipients=row["total_recipients"],
        total_sent=row["total_sent"],
        total_delivered=row["total_delivered"],
        total_read=row["total_read"],
        total_failed=row["total_failed"],
        total_duplicates=row["total_duplicates"],
        pending=row["pending_count"],
        queued=row["queued_count"],
        sending=row["sending_count"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        hold_kind=row["hold_kind"],
        total_suppressed=row["total_suppressed"],
        send_window=row["send_window"],
        expires_at=row["expires_at"],
        max_per_minute=row["max_per_minute"],
        total_expired=row["total_expired"],
        retry_policy=row["retry_policy"],
        retry_waiting=row["retry_waiting"],
        total_invalid=row["total_invalid"],
        ab_test=row["ab_test"],
    )


class Campaigns:
    """Campaign rows. Their counters are kept by the database (see the migration): read only."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self,
        name: str,
        template: Mapping[str, Any],
        instance_ids: Sequence[UUID],
        *,
        scheduled_at: datetime | None = None,
        upload: StagedUpload | None = None,
        send_window: Mapping[str, Any] | None = None,
        expires_at: datetime | None = None,
        max_per_minute: int | None = None,
        retry_policy: Mapping[str, Any] | None = None,
        ab_test: Mapping[str, Any] | None = None,
    ) -> Campaign:
        """A new campaign, ``draft`` (or ``scheduled`` when ``scheduled_at`` is given), with
        the recipients of ``upload`` (staged for its id), in one transaction: all or nothing.
        ``send_window``, ``expires_at``, ``max_per_minute``: README, "Send windows".
        ``ab_test``: its A/B variants (``dispatcher/ab/settings.py``), ``template`` then
        being the first variant's."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""
                INSERT INTO whatsapp_campaigns
                    (id, name, template, instance_ids, scheduled_at, status,
                     send_window, expires_at, max_per_minute, retry_policy, ab_test)
                VALUES (coalesce($5::uuid, gen_random_uuid()), $1, $2, $3, $4,
                        (CASE WHEN $4::timestamptz IS NULL THEN 'draft' ELSE 'scheduled' END)
                            ::whatsapp_campaign_status,
                        $6, $7, $8, $9, $10)
                RETURNING {_COLUMNS}
                """,
                name,
                dict(template),
                list(instance_ids),
                scheduled_at,
                None if upload is None else upload.campaign_id,
                None if send_window is None else dict(send_window),
                expires_at,
                max_per_minute,
                None if retry_policy is None else dict(retry_policy),
                None if ab_test is None else dict(ab_test),
            )
            if upload is not None:
                await apply(conn, upload)
                row = await conn.fetchrow(
                    f"SELECT {_COLUMNS} FROM whatsapp_campaigns WHERE id = $1", row["id"]
                )
        return _campaign(row)

    async def get(self, campaign_id: UUID) -> Campaign | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM whatsapp_campaigns WHERE id = $1", campaign_id
        )
        return None if row is None else _campaign(row)

    async def status(self, campaign_id: UUID) -> CampaignStatus | None:
        """Its status alone (None: no such campaign): what a sender checks per batch."""
        value = await self._pool.fetchval(
            "SELECT status FROM whatsapp_campaigns WHERE id = $1", campaign_id
        )
        return None if value is None else CampaignStatus(value)

    async def template(self, campaign_id: UUID) -> dict[str, Any] | None:
        """Its template (``{name, language, components}``; never changes once created), the
        one place it is kept: batches carry none. None: no such campaign."""
        value = await self._pool.fetchval(
            "SELECT template FROM whatsapp_campaigns WHERE id = $1", campaign_id
        )
        return None if value is None else dict(value)

    async def page(
        self, *, status: CampaignStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[Campaign]:
        """Newest first, optionally of one status."""
        rows = await self._pool.fetch(
            f"""
            SELECT {_COLUMNS} FROM whatsapp_campaigns
            WHERE $1::whatsapp_campaign_status IS NULL OR status = $1
            ORDER BY created_at DESC, id LIMIT $2 OFFSET $3
            """,
            None if status is None else status.value,
            limit,
            offset,
        )
        return [_campaign(row) for row in rows]

    async def newest(
        self,
        *,
        statuses: Sequence[CampaignStatus] = (),
        after: UUID | None = None,
        limit: int = 100,
    ) -> list[Campaign]:
        """Newest first (keyset): those created before campaign ``after`` (the last of the
        previous page), of any of ``statuses`` (none: every status). An ``after`` that names
        no campaign: none. Only the conditions given are in the statement: a generic plan of
        ``$1 IS NULL OR ...`` could use no index (``0020_campaign_listing.sql``)."""
        conditions: list[str] = []
        args: list[Any] = []
        if statuses:
            args.append([status.value for status in statuses])
            conditions.append(f"status = ANY(${len(args)}::whatsapp_campaign_status[])")
        if after is not None:
            args.append(after)
            conditions.append(
                f"(created_at, id) < (SELECT created_at, id FROM whatsapp_campaigns "
                f"WHERE id = ${len(args)})"
            )
        args.append(limit)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._pool.fetch(
            f"""
            SELECT {_COLUMNS} FROM whatsapp_campaigns {where}
            ORDER BY created_at DESC, id DESC LIMIT ${len(args)}
            """,
            *args,
        )
        return [_campaign(row) for row in rows]

    async def transition(
        self, campaign_id: UUID, to: CampaignStatus, *, reason: str | None = None
    ) -> bool:
        """Move to ``to`` if :data:`TRANSITIONS` allows it from the current status, atomically.

        True when it moved; False when the campaign is missing or in a status it may not leave
        for ``to`` (e.g. resuming a completed campaign). ``started_at`` is set the first time it
        runs, ``finished_at`` when it reaches a final status.
        """
        result = await self._pool.execute(
            """
            UPDATE whatsapp_campaigns
            SET status = $2::whatsapp_campaign_status,
                status_reason = $4,
                hold_kind = NULL,
                updated_at = now(),
                started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, now())
                                  ELSE started_at END,
                finished_at = CASE WHEN $2 IN ('completed', 'cancelled', 'failed') THEN now()
                                   ELSE finished_at END
            WHERE id = $1 AND status = ANY($3::whatsapp_campaign_status[])
            """,
            campaign_id,
            to.value,
            [status.value for status in TRANSITIONS[to]],
            reason,
        )
        return bool(result == "UPDATE 1")

    async def hold(self, campaign_id: UUID, reason: str, kind: str) -> bool:
        """``running`` -> ``held`` with the reason, atomically; False if it was not running
        (already held, paused, finished): holding twice is harmless."""
        result = await self._pool.execute(
            """
            UPDATE whatsapp_campaigns
            SET status = 'held', status_reason = $2, hold_kind = $3, updated_at = now()
            WHERE id = $1 AND status = 'running'
            """,
            campaign_id,
            reason,
            kind,
        )
        return bool(result == "UPDATE 1")

    async def hold_template(
        self, name: str, language: str | None, reason: str, waba_id: str | None = None
    ) -> list[UUID]:
        """Hold every running campaign that sends template ``name`` (in ``language``, or any
        when None) of WABA ``waba_id`` (any when None; see ``_WABA_MATCH``); the ids held.
        The template is recorded as paused until released (migration 0022)."""
        rows = await self._pool.fetch(
            f"""
            WITH paused AS (
                INSERT INTO whatsapp_paused_templates (name, language, waba_id)
                VALUES ($1, coalesce($2::text, ''), coalesce($4::text, ''))
                ON CONFLICT (name, waba_id, language) DO UPDATE SET paused_at = now()
            )
            UPDATE whatsapp_campaigns
            SET status = 'held', status_reason = $3, hold_kind = 'template', updated_at = now()
            WHERE status = 'running' AND {_TEMPLATE_MATCH} AND {_WABA_MATCH % {"n": 4}}
            RETURNING id
            """,
            name,
            language,
            reason,
            waba_id,
        )
        return [row["id"] for row in rows]

    async def release_template(
        self, name: str, language: str | None, waba_id: str | None = None
    ) -> list[UUID]:
        """``held`` -> ``running`` for campaigns held for template ``name`` of WABA
        ``waba_id`` (as :meth:`hold_template`; holds for bad parameters stay: only the
        operator lifts those), unless another of its live templates is still known paused
        (``_STILL_PAUSED``); the ids released."""
        rows = await self._pool.fetch(
            f"""
            WITH released AS (
                DELETE FROM whatsapp_paused_templates p WHERE {_UNPAUSED}
            )
            UPDATE whatsapp_campaigns c
            SET status = 'running', status_reason = NULL, hold_kind = NULL, updated_at = now()
            WHERE status = 'held' AND hold_kind = 'template' AND {_TEMPLATE_MATCH}
              AND {_WABA_MATCH % {"n": 3}} AND NOT {_STILL_PAUSED}
            RETURNING id
            """,
            name,
            language,
            waba_id,
        )
        return [row["id"] for row in rows]

    async def complete_if_settled(self, campaign_id: UUID) -> bool:
        """``running`` -> ``completed`` when no recipient is pending or in flight and no
        failure waits for the retry sweep's decision (``store/attempts.py``), atomically."""
        result = await self._pool.execute(
            """
            UPDATE whatsapp_campaigns
            SET status = 'completed', updated_at = now(), finished_at = now()
            WHERE id = $1 AND status = 'running'
              AND pending_count = 0 AND queued_count = 0 AND sending_count = 0
              -- The first of its entries by 0021's (campaign_id, seq) index: with a mass
              -- failure of another campaign a NOT EXISTS was planned as a scan of the whole
              -- inbox for a first match that never came.
              AND (SELECT min(i.seq) FROM whatsapp_retry_inbox i WHERE i.campaign_id = $1)
                  IS NULL
            """,
            campaign_id,
        )
        return bool(result == "UPDATE 1")

    async def reopen(self, campaign_ids: Sequence[UUID]) -> int:
        """``completed`` -> ``running`` for campaigns given work again (revived dead letters)."""
        result = await self._pool.execute(
            """
            UPDATE whatsapp_campaigns
            SET status = 'running', finished_at = NULL, updated_at = now()
            WHERE id = ANY($1::uuid[]) AND status = 'completed'
            """,
            list(campaign_ids),
        )
        return int(result.split()[-1])

    async def stopped(self, campaign_ids: Sequence[UUID]) -> set[UUID]:
        """Those of ``campaign_ids`` that were cancelled or failed, or are past their
        ``expires_at``: send nothing more of them."""
        rows = await self._pool.fetch(
            "SELECT id FROM whatsapp_campaigns WHERE id = ANY($1::uuid[]) "
            "AND (status IN ('cancelled', 'failed') OR expires_at <= now())",
            list(campaign_ids),
        )
        return {row["id"] for row in rows}

    async def resume_scheduled(self, campaign_id: UUID) -> bool:
        """``paused`` -> ``scheduled`` for a campaign paused before it ever started whose time
        is still to come: it keeps its time instead of starting now. False otherwise."""
        result = await self._pool.execute(
            """
            UPDATE whatsapp_campaigns
            SET status = 'scheduled', status_reason = NULL, updated_at = now()
            WHERE id = $1 AND status = 'paused' AND started_at IS NULL
              AND scheduled_at > now()
            """,
            campaign_id,
        )
        return bool(result == "UPDATE 1")

    async def reschedule(self, campaign_id: UUID, scheduled_at: datetime) -> bool:
        """Set the start time of a draft or scheduled campaign (it becomes ``scheduled``)."""
        result = await self._pool.execute(
            """
            UPDATE whatsapp_campaigns
            SET scheduled_at = $2, status = 'scheduled', updated_at = now()
            WHERE id = $1 AND status IN ('draft', 'scheduled')
            """,
            campaign_id,
            scheduled_at,
        )
        return bool(result == "UPDATE 1")

    async def due(self, now: datetime | None = None, limit: int = 100) -> list[Campaign]:
        """Scheduled campaigns whose time has come (database clock unless ``now`` is given).

        Start each with ``transition(id, RUNNING)``: its result tells which starter won.
        """
        rows = await self._pool.fetch(
            f"""
            SELECT {_COLUMNS} FROM whatsapp_campaigns
            WHERE status = 'scheduled' AND scheduled_at <= coalesce($1, now())
            ORDER BY scheduled_at, id LIMIT $2
            """,
            now,
            limit,
        )
        return [_campaign(row) for row in rows]

    async def finished_within(self, seconds: float, limit: int = 1_000) -> list[Campaign]:
        """Campaigns completed or failed in the last ``seconds`` (database clock), for alerts."""
        rows = await self._pool.fetch(
            f"""
            SELECT {_COLUMNS} FROM whatsapp_campaigns
            WHERE status IN ('completed', 'failed')
              AND finished_at > now() - make_interval(secs => $1)
            ORDER BY finished_at, id LIMIT $2
            """,
            seconds,
            limit,
        )
        return [_campaign(row) for row in rows]

    async def running(self) -> list[Campaign]:
        """Campaigns a (restarted) coordinator must drive."""
        return await self.page(status=CampaignStatus.RUNNING, limit=10_000)
