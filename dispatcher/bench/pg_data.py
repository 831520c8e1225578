"""A database shaped like a busy deployment's, filled fast (server-side generate_series).

Half the recipients belong to one big running campaign (sent, delivered, read, failed, then
a batch in flight, then pending), half to many completed campaigns; the portfolio's contact
table holds the window's recipients and a backlog older than 24 h. The figures keep their
proportions at any size, so a small fill has the statistics shape of a big one.

Indexes are built after the rows and the triggers are off during the fill (the campaign
counters are then computed once): that is what makes 10 million rows take minutes.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from dispatcher.store.hot_paths import BATCH, LEASE, Sample

BUSINESS = "scale-biz"
"""The big sender: unlimited (no other portfolio can reach millions of recipients a day)."""
LIMITED = "limited-biz"
"""A portfolio at TIER_100K with a full window: the gate's history read at its largest."""
INSTANCES = 4
EPOCH = 1
QUEUE_PREFIX = "scale:"
IN_FLIGHT = 4 * BATCH
"""Rows of the running campaign in instances' hands (a quarter of them in doubt)."""


@dataclass(frozen=True, slots=True)
class Shape:
    rows: int

    @property
    def running_rows(self) -> int:
        return self.rows // 2

    @property
    def completed_campaigns(self) -> int:
        return max(20, self.rows // 5_000)

    @property
    def per_completed(self) -> int:
        return (self.rows - self.running_rows) // self.completed_campaigns

    @property
    def sent_rows(self) -> int:
        """Rows of the running campaign already sent (40%)."""
        return self.running_rows * 2 // 5

    @property
    def audience(self) -> int:
        """Distinct phones the completed campaigns were sent to (audiences overlap)."""
        return max(1_000, self.rows // 5, self.per_completed)


# Completed campaigns: row i of campaign k, phones from one shared audience, every message
# settled days ago. $1 campaign ids, $2 rows per campaign, $3 audience, $4 first row, $5 last.
_FILL_COMPLETED = """
INSERT INTO whatsapp_campaign_recipients
    (campaign_id, phone, variables, status, attempts, instance_id, sender_epoch, wamid,
     error_code, error_message, created_at, updated_at, queued_at, sending_at, sent_at,
     delivered_at, read_at, failed_at)
SELECT ($1::uuid[])[k + 1], '+55119' || lpad(((k * 7919 + j) % $3)::text, 8, '0'),
       jsonb_build_object('name', 'customer ' || g),
       (CASE WHEN b < 70 THEN 'delivered' WHEN b < 85 THEN 'read' WHEN b < 95 THEN 'sent'
             ELSE 'failed' END)::whatsapp_recipient_status,
       1, ($6::uuid[])[k % $7 + 1], 1,
       CASE WHEN b < 95 THEN 'wamid.HBgM' || md5('c' || g) END,
       CASE WHEN b >= 95 THEN 131026 END,
       CASE WHEN b >= 95 THEN 'Message undeliverable' END,
       t, t, t, t, CASE WHEN b < 95 THEN t END,
       CASE WHEN b < 85 THEN t + interval '5 seconds' END,
       CASE WHEN b BETWEEN 70 AND 84 THEN t + interval '1 minute' END,
       CASE WHEN b >= 95 THEN t END
FROM generate_series($4::bigint, $5::bigint) AS g,
     LATERAL (SELECT g / $2 AS k, g % $2 AS j, (g * 37) % 100 AS b) AS p,
     LATERAL (SELECT now() - interval '30 days' + k * interval '1 minute'
                     + j * interval '10 milliseconds' AS t) AS at
"""

# The running campaign: sent (the last 20 h), failed, in flight, then pending.
# $1 campaign, $2 sent rows, $3 in-flight rows, $4 claim id, $5 instance, $6 first, $7 last.
_FILL_RUNNING = """
INSERT INTO whatsapp_campaign_recipients
    (campaign_id, phone, variables, status, claim_id, attempts, instance_id, sender_epoch,
     wamid, error_code, error_message, created_at, updated_at, queued_at, sending_at,
     sent_at, delivered_at, read_at, failed_at, in_doubt_at)
SELECT $1, '+55219' || lpad(g::text, 8, '0'), jsonb_build_object('name', 'customer ' || g),
       (CASE WHEN g < $2 THEN CASE WHEN b < 60 THEN 'delivered' WHEN b < 80 THEN 'read'
                                   WHEN b < 98 THEN 'sent' ELSE 'failed' END
             WHEN g < $2 + $3 / 2 THEN 'sending'
             WHEN g < $2 + $3 THEN 'queued'
             ELSE 'pending' END)::whatsapp_recipient_status,
       CASE WHEN g >= $2 AND g < $2 + $3 THEN $4::bigint END,
       CASE WHEN g < $2 + $3 / 2 THEN 1 ELSE 0 END,
       CASE WHEN g < $2 + $3 / 2 THEN $5::uuid END,
       CASE WHEN g < $2 + $3 / 2 THEN 1 END,
       CASE WHEN g < $2 AND b < 98 THEN 'wamid.HBgN' || md5('r' || g) END,
       CASE WHEN g < $2 AND b >= 98 THEN 131026 END,
       CASE WHEN g < $2 AND b >= 98 THEN 'Message undeliverable' END,
       now() - interval '21 hours', now() - interval '21 hours' + s,
       CASE WHEN g < $2 + $3 THEN now() - interval '21 hours' + s END,
       CASE WHEN g < $2 + $3 / 2 THEN now() - interval '21 hours' + s END,
       CASE WHEN g < $2 AND b < 98 THEN now() - interval '21 hours' + s END,
       CASE WHEN g < $2 AND b < 80 THEN now() - interval '21 hours' + s + interval '5 s' END,
       CASE WHEN g < $2 AND b BETWEEN 60 AND 79 THEN now() - interval '20 hours' + s END,
       CASE WHEN g < $2 AND b >= 98 THEN now() - interval '21 hours' + s END,
       CASE WHEN g >= $2 AND g < $2 + $3 / 8 THEN now() - interval '10 minutes' END
FROM generate_series($6::bigint, $7::bigint) AS g,
     LATERAL (SELECT (g * 37) % 100 AS b,
                     least(g, $2) * interval '20 hours' / greatest($2, 1) AS s) AS p
"""

_COUNTERS = """
UPDATE whatsapp_campaigns c
SET total_recipients = a.total, total_sent = a.sent, total_delivered = a.delivered,
    total_read = a.read, total_failed = a.failed, pending_count = a.pending,
    queued_count = a.queued, sending_count = a.sending
FROM (SELECT campaign_id, count(*) AS total,
             count(*) FILTER (WHERE sent_at IS NOT NULL) AS sent,
             count(*) FILTER (WHERE status IN ('delivered', 'read')) AS delivered,
             count(*) FILTER (WHERE status = 'read') AS read,
             count(*) FILTER (WHERE status = 'failed') AS failed,
             count(*) FILTER (WHERE status = 'pending') AS pending,
             count(*) FILTER (WHERE status = 'queued') AS queued,
             count(*) FILTER (WHERE status = 'sending') AS sending
      FROM whatsapp_campaign_recipients GROUP BY campaign_id) AS a
WHERE c.id = a.campaign_id
"""

# The window: everyone the running campaign reached (the last 21 h); the backlog: half the
# completed campaigns' audience, last sent 1 to 9 days ago (what pruning removes); and the
# windows of other portfolios on the same database, one of them limited (its window at most
# its limit). Inserted in time order, as the trigger writes them. $1 business, $2 running
# campaign, $3 audience, $4 other portfolios' contacts, $5 how many, $6 limited, $7 its.
_CONTACTS = """
INSERT INTO whatsapp_portfolio_contacts (business_id, recipient, first_sent_at, last_sent_at)
SELECT business_id, recipient, last_sent_at, last_sent_at FROM (
    SELECT $1 AS business_id, phone AS recipient, sent_at AS last_sent_at
    FROM whatsapp_campaign_recipients WHERE campaign_id = $2 AND sent_at IS NOT NULL
    UNION ALL
    SELECT $1, '+55119' || lpad(p::text, 8, '0'),
           now() - interval '25 hours' - (p % 1000) * interval '11 minutes'
    FROM generate_series(0, $3 / 2 - 1) AS p
    UNION ALL
    SELECT 'other-biz-' || p % $5, '+55319' || lpad(p::text, 8, '0'),
           now() - (p % 1000) * interval '80 seconds'
    FROM generate_series(0, $4 - 1) AS p
    UNION ALL
    SELECT $6, '+55419' || lpad(p::text, 8, '0'), now() - (p % 1000) * interval '80 seconds'
    FROM generate_series(0, $7 - 1) AS p
) AS c ORDER BY last_sent_at
"""
OTHER_PORTFOLIOS = 9

_SUPPRESSIONS = """
INSERT INTO whatsapp_suppressions (business_id, address, reason, source)
SELECT $1, '+55219' || lpad(g::text, 8, '0'), 'opted out', 'webhook'
FROM generate_series(0, $2 - 1, 97) AS g
"""

_CHUNK = 1_000_000


async def _instances(conn: asyncpg.Connection) -> list[uuid.UUID]:
    await conn.execute(
        "INSERT INTO whatsapp_portfolios (business_id, detected_tier, detected_at, limit_source) "
        "VALUES ($1, 'TIER_UNLIMITED', now(), 'graph_api'), ($2, 'TIER_100K', now(), 'graph_api')",
        BUSINESS,
        LIMITED,
    )
    rows = await conn.fetch(
        """
        INSERT INTO whatsapp_instances (phone_number_id, business_id, name, epoch, waba_id)
        SELECT 'scale-pn-' || n, $1, 'number ' || n, $2, 'scale-waba'
        FROM generate_series(1, $3) AS n RETURNING id
        """,
        BUSINESS,
        EPOCH,
        INSTANCES,
    )
    return sorted(row["id"] for row in rows)


async def _campaigns(
    conn: asyncpg.Connection, instances: list[uuid.UUID], completed: int
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    template = {"name": "promo", "language": {"code": "pt_BR"}, "components": []}
    running = await conn.fetchval(
        "INSERT INTO whatsapp_campaigns (name, template, instance_ids, status, started_at) "
        "VALUES ('big running', $1, $2, 'running', now() - interval '21 hours') RETURNING id",
        template,
        instances,
    )
    rows = await conn.fetch(
        """
        INSERT INTO whatsapp_campaigns
            (name, template, instance_ids, status, created_at, started_at, finished_at)
        SELECT 'completed ' || n, $1, $2, 'completed', t, t, t + interval '2 hours'
        FROM generate_series(1, $3) AS n,
             LATERAL (SELECT now() - interval '30 days' + n * interval '1 minute' AS t) AS at
        ORDER BY n RETURNING id
        """,
        template,
        instances,
        completed,
    )
    return running, [row["id"] for row in rows]


async def _without_indexes(
    conn: asyncpg.Connection, fill: Callable[[], Awaitable[None]], say: Callable[[str], None]
) -> None:
    """Run the awaitable ``fill`` with the recipients' secondary indexes dropped, then
    build them again from their own definitions (so every migration's index is rebuilt)."""
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = "
        "'whatsapp_campaign_recipients' AND indexname <> 'whatsapp_campaign_recipients_pkey'"
    )
    for index in indexes:
        await conn.execute(f'DROP INDEX "{index["indexname"]}"')
    await fill()
    await conn.execute("SET maintenance_work_mem = '256MB'")
    for index in indexes:
        say(f"index {index['indexname']}")
        await conn.execute(index["indexdef"])


async def fill(
    conn: asyncpg.Connection, rows: int, say: Callable[[str], None] = lambda _: None
) -> Sample:
    """Fill an empty, migrated database with ``rows`` recipients; the :class:`Sample` of it."""
    shape = Shape(rows)
    instances = await _instances(conn)
    running, completed = await _campaigns(conn, instances, shape.completed_campaigns)
    claim_id = await conn.fetchval("SELECT nextval('whatsapp_claim_seq')")
    superuser = await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    # Replica mode skips the triggers and the foreign-key checks (superusers only); the
    # others skip the triggers alone. The counters are computed once, after.
    if superuser:
        await conn.execute("SET session_replication_role = replica")
    else:
        await conn.execute("ALTER TABLE whatsapp_campaign_recipients DISABLE TRIGGER USER")

    async def insert() -> None:
        completed_rows = shape.per_completed * shape.completed_campaigns
        for start in range(0, completed_rows, _CHUNK):
            end = min(start + _CHUNK, completed_rows) - 1
            say(f"completed campaigns: rows {start:,}-{end:,}")
            await conn.execute(
                _FILL_COMPLETED, completed, shape.per_completed, shape.audience, start, end,
                instances, INSTANCES,
            )  # fmt: skip
        for start in range(0, shape.running_rows, _CHUNK):
            end = min(start + _CHUNK, shape.running_rows) - 1
            say(f"running campaign: rows {start:,}-{end:,}")
            await conn.execute(
                _FILL_RUNNING, running, shape.sent_rows, IN_FLIGHT, claim_id, instances[0],
                start, end,
            )  # fmt: skip

    try:
        await _without_indexes(conn, insert, say)
    finally:
        if superuser:
            await conn.execute("SET session_replication_role = origin")
        else:
            await conn.execute("ALTER TABLE whatsapp_campaign_recipients ENABLE TRIGGER USER")
    say("counters, contacts, suppressions")
    await conn.execute(_COUNTERS)
    await conn.execute(
        "INSERT INTO whatsapp_portfolios (business_id) "
        "SELECT 'other-biz-' || n FROM generate_series(0, $1 - 1) AS n",
        OTHER_PORTFOLIOS,
    )
    await conn.execute(
        _CONTACTS, BUSINESS, running, shape.audience, shape.rows // 2, OTHER_PORTFOLIOS,
        LIMITED, min(100_000, shape.rows // 100),
    )  # fmt: skip
    # A live coordinator lease: leased claims run as they do in a deployment.
    await conn.execute(
        "INSERT INTO whatsapp_coordinator_lease VALUES "
        "('coordinator', $1, $2, now(), now(), now() + interval '1 day')",
        LEASE[0],
        LEASE[1],
    )
    await conn.execute(_SUPPRESSIONS, BUSINESS, shape.running_rows)
    lost_at = await conn.fetchval(
        "INSERT INTO whatsapp_queue_markers (queue_prefix, token, lost_at, losses) "
        "VALUES ($1, 'scale', now() - interval '1 minute', 1) RETURNING lost_at",
        QUEUE_PREFIX,
    )
    # A mass failure waiting for the retry sweep, and a retried attempt kept for each.
    await conn.execute(
        "INSERT INTO whatsapp_retry_inbox (recipient_id, campaign_id) "
        "SELECT id, campaign_id FROM whatsapp_campaign_recipients WHERE status = 'failed'"
    )
    await conn.execute(
        "INSERT INTO whatsapp_recipient_attempts (recipient_id, attempt, wamid, sends, "
        "error_code, failed_at, retry_at) SELECT id, 1, 'wamid.old.' || id, 1, 131049, "
        "failed_at, failed_at + interval '1 day' FROM whatsapp_campaign_recipients "
        "WHERE status = 'failed'"
    )
    say("vacuum analyze")
    await conn.execute("VACUUM (ANALYZE)")
    return await _sample(conn, shape, running, completed[0], claim_id, instances[0], lost_at)


async def _sample(
    conn: asyncpg.Connection,
    shape: Shape,
    running: uuid.UUID,
    completed: uuid.UUID,
    claim_id: int,
    instance_id: uuid.UUID,
    lost_at: datetime,
) -> Sample:
    async def ids(status: str, *, in_doubt: bool | None = None) -> list[int]:
        rows = await conn.fetch(
            "SELECT id FROM whatsapp_campaign_recipients WHERE campaign_id = $1 "
            "AND status = $2 AND ($4::bool IS NULL OR (in_doubt_at IS NOT NULL) = $4) "
            "ORDER BY id LIMIT $3",
            running,
            status,
            BATCH,
            in_doubt,
        )
        return [row["id"] for row in rows]

    sent = await conn.fetch(
        "SELECT id, wamid FROM whatsapp_campaign_recipients WHERE campaign_id = $1 "
        "AND status = 'sent' ORDER BY id DESC LIMIT $2",
        running,
        BATCH,
    )
    first = await conn.fetchval(
        "SELECT min(id) FROM whatsapp_campaign_recipients WHERE campaign_id = $1", running
    )
    return Sample(
        business_id=BUSINESS,
        limited_business_id=LIMITED,
        instance_id=instance_id,
        epoch=EPOCH,
        running=running,
        completed=completed,
        claim_id=claim_id,
        queued_ids=await ids("queued"),
        sending_ids=await ids("sending", in_doubt=False),
        sent_ids=[row["id"] for row in sent],
        sent_wamids=[row["wamid"] for row in sent],
        middle_id=first + shape.running_rows // 2,
        queue_prefix=QUEUE_PREFIX,
        lost_at=lost_at,
        watermark=first + shape.running_rows - BATCH,
        failed_ids=await ids("failed"),
    )
