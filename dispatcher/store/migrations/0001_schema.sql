-- The system of record: instances, portfolios, campaigns, recipients and their statuses.
--
-- Campaign counters are kept by statement-level triggers on the recipients table, inside the
-- statement that moves the rows: whatever statement changes a recipient (COPY, claim, send
-- results, webhooks, requeue), the counters of its campaign move with it, exactly, in the
-- same transaction. Code never writes the counters itself.

-- Recipient statuses in precedence order: comparisons and GREATEST/max follow this order,
-- which is what makes webhook statuses forward-only whatever order they arrive in
-- (sent < delivered < read < failed: failed is final).
CREATE TYPE whatsapp_recipient_status AS ENUM (
    'pending', 'queued', 'sending', 'sent', 'delivered', 'read', 'failed'
);

CREATE TYPE whatsapp_campaign_status AS ENUM (
    'draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled', 'failed'
);

CREATE TYPE whatsapp_instance_status AS ENUM ('active', 'paused', 'error');

-- A business portfolio: its numbers share one messaging limit (unique recipients per 24 h).
CREATE TABLE whatsapp_portfolios (
    business_id     text PRIMARY KEY,
    detected_tier   text,
    detected_at     timestamptz,
    override_tier   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- First and last send to each recipient per portfolio: what the messaging-limit gate
-- rebuilds its moving window from. The recipient is the phone or the BSUID, as sent.
CREATE TABLE whatsapp_portfolio_contacts (
    business_id     text NOT NULL REFERENCES whatsapp_portfolios (business_id),
    recipient       text NOT NULL,
    first_sent_at   timestamptz NOT NULL,
    last_sent_at    timestamptz NOT NULL,
    PRIMARY KEY (business_id, recipient)
);
CREATE INDEX whatsapp_portfolio_contacts_window
    ON whatsapp_portfolio_contacts (business_id, last_sent_at);

CREATE TABLE whatsapp_instances (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_number_id     text NOT NULL UNIQUE,
    business_id         text NOT NULL REFERENCES whatsapp_portfolios (business_id),
    name                text NOT NULL DEFAULT '',
    messaging_tier      text,
    detected_tier       text,
    tier_detected_at    timestamptz,
    throughput_mps      integer CHECK (throughput_mps > 0),
    status              whatsapp_instance_status NOT NULL DEFAULT 'active',
    status_reason       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX whatsapp_instances_business ON whatsapp_instances (business_id);

-- Access tokens live apart, so no query that reads instances for display can return one.
CREATE TABLE whatsapp_instance_tokens (
    instance_id     uuid PRIMARY KEY REFERENCES whatsapp_instances (id) ON DELETE CASCADE,
    access_token    text NOT NULL
);

CREATE TABLE whatsapp_campaigns (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                text NOT NULL,
    status              whatsapp_campaign_status NOT NULL DEFAULT 'draft',
    status_reason       text,
    template            jsonb NOT NULL,
    instance_ids        uuid[] NOT NULL DEFAULT '{}',
    scheduled_at        timestamptz,
    -- Kept by the triggers below; see the header.
    total_recipients    bigint NOT NULL DEFAULT 0,
    total_sent          bigint NOT NULL DEFAULT 0,  -- accepted by Meta (sent_at known)
    total_delivered     bigint NOT NULL DEFAULT 0,  -- status delivered or read
    total_read          bigint NOT NULL DEFAULT 0,
    total_failed        bigint NOT NULL DEFAULT 0,
    pending_count       bigint NOT NULL DEFAULT 0,
    queued_count        bigint NOT NULL DEFAULT 0,
    sending_count       bigint NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz
);
CREATE INDEX whatsapp_campaigns_due ON whatsapp_campaigns (scheduled_at)
    WHERE status = 'scheduled';

CREATE SEQUENCE whatsapp_claim_seq;

CREATE TABLE whatsapp_campaign_recipients (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id     uuid NOT NULL REFERENCES whatsapp_campaigns (id) ON DELETE CASCADE,
    phone           text,
    user_id         text,
    variables       jsonb,
    status          whatsapp_recipient_status NOT NULL DEFAULT 'pending',
    claim_id        bigint,
    attempts        integer NOT NULL DEFAULT 0,
    instance_id     uuid REFERENCES whatsapp_instances (id),
    wamid           text,
    error_code      integer,
    error_message   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    queued_at       timestamptz,
    sending_at      timestamptz,
    sent_at         timestamptz,
    delivered_at    timestamptz,
    read_at         timestamptz,
    failed_at       timestamptz,
    CONSTRAINT whatsapp_recipient_one_address CHECK ((phone IS NULL) <> (user_id IS NULL))
);
-- Claims (campaign, 'pending', by id), listing by status, counts, and the campaign FK.
CREATE INDEX whatsapp_recipients_campaign_status
    ON whatsapp_campaign_recipients (campaign_id, status, id);
-- Webhook statuses are matched by wamid.
CREATE INDEX whatsapp_recipients_wamid
    ON whatsapp_campaign_recipients (wamid) WHERE wamid IS NOT NULL;

CREATE FUNCTION whatsapp_recipients_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    -- Campaign rows are locked in id order: two statements never wait on each other in a cycle.
    FOR d IN
        SELECT campaign_id,
               count(*) AS total,
               count(*) FILTER (WHERE status = 'pending') AS pending
        FROM new_rows GROUP BY campaign_id ORDER BY campaign_id
    LOOP
        UPDATE whatsapp_campaigns
        SET total_recipients = total_recipients + d.total,
            pending_count = pending_count + d.pending,
            updated_at = now()
        WHERE id = d.campaign_id;
    END LOOP;
    RETURN NULL;
END $$;

CREATE FUNCTION whatsapp_recipients_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    FOR d IN
        SELECT n.campaign_id,
               sum((n.status = 'pending')::int - (o.status = 'pending')::int) AS pending,
               sum((n.status = 'queued')::int - (o.status = 'queued')::int) AS queued,
               sum((n.status = 'sending')::int - (o.status = 'sending')::int) AS sending,
               sum((n.sent_at IS NOT NULL)::int - (o.sent_at IS NOT NULL)::int) AS sent,
               sum((n.status IN ('delivered', 'read'))::int
                   - (o.status IN ('delivered', 'read'))::int) AS delivered,
               sum((n.status = 'read')::int - (o.status = 'read')::int) AS read,
               sum((n.status = 'failed')::int - (o.status = 'failed')::int) AS failed
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status <> o.status OR (n.sent_at IS NULL) <> (o.sent_at IS NULL)
        GROUP BY n.campaign_id ORDER BY n.campaign_id
    LOOP
        UPDATE whatsapp_campaigns
        SET pending_count = pending_count + d.pending,
            queued_count = queued_count + d.queued,
            sending_count = sending_count + d.sending,
            total_sent = total_sent + d.sent,
            total_delivered = total_delivered + d.delivered,
            total_read = total_read + d.read,
            total_failed = total_failed + d.failed,
            updated_at = now()
        WHERE id = d.campaign_id;
    END LOOP;

    -- The first time Meta is known to have accepted a message, the recipient enters its
    -- portfolio's 24 h window (sorted: concurrent upserts lock keys in the same order).
    INSERT INTO whatsapp_portfolio_contacts AS c (business_id, recipient, first_sent_at, last_sent_at)
    SELECT i.business_id, coalesce(n.phone, n.user_id), min(n.sent_at), max(n.sent_at)
    FROM new_rows n
    JOIN old_rows o ON o.id = n.id
    JOIN whatsapp_instances i ON i.id = n.instance_id
    WHERE n.sent_at IS NOT NULL AND o.sent_at IS NULL
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (business_id, recipient) DO UPDATE
    SET first_sent_at = least(c.first_sent_at, excluded.first_sent_at),
        last_sent_at = greatest(c.last_sent_at, excluded.last_sent_at);
    RETURN NULL;
END $$;

CREATE TRIGGER whatsapp_recipients_count_insert
    AFTER INSERT ON whatsapp_campaign_recipients
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION whatsapp_recipients_inserted();

CREATE TRIGGER whatsapp_recipients_count_update
    AFTER UPDATE ON whatsapp_campaign_recipients
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION whatsapp_recipients_updated();
