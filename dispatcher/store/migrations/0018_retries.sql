-- Automatic retry of failed messages (issue 15): a per-campaign policy, every attempt kept.
--
-- A failed recipient the campaign's policy retries goes back to 'pending' with not_before
-- (0015) = now + the rule's delay: it waits in the due index without holding anything and
-- goes through the normal claim -> route -> send path (pair rate, messaging limit, windows).
-- The move is explicit and recorded (dispatcher/store/attempts.py): the closed attempt
-- (its wamid, error code and title) becomes a row of whatsapp_recipient_attempts, and the
-- recipient row starts afresh (status, wamid, sent/delivered/read/failed times, error,
-- in-send attempts) with retries + 1. The counters of 0001 follow the move: the row leaves
-- total_failed and, if Meta had accepted the failed attempt, total_sent (both count the
-- current attempt of each recipient), and joins pending_count until it is sent again.

-- The campaign's policy as given (dispatcher/retry_policy.py); NULL: the default policy.
ALTER TABLE whatsapp_campaigns ADD COLUMN retry_policy jsonb;

-- Automatic retries made so far: the current attempt is number retries + 1.
ALTER TABLE whatsapp_campaign_recipients ADD COLUMN retries integer NOT NULL DEFAULT 0;

-- Every failed attempt, retried (retry_at set: when it became due again) or the last one
-- (retry_at NULL: the row stays failed with this code).
CREATE TABLE whatsapp_recipient_attempts (
    recipient_id    bigint NOT NULL
        REFERENCES whatsapp_campaign_recipients (id) ON DELETE CASCADE,
    attempt         integer NOT NULL,
    instance_id     uuid,
    wamid           text,
    sends           integer NOT NULL,  -- send tries within the attempt (in-send retries)
    error_code      integer,
    error_message   text,
    error_details   text,
    sent_at         timestamptz,
    failed_at       timestamptz,
    retry_at        timestamptz,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recipient_id, attempt)
);
-- A status webhook for the wamid of a retried attempt (Meta retries webhooks; a late
-- delivered or read) is told apart by it and never moves the new attempt (outcomes.py).
CREATE INDEX whatsapp_recipient_attempts_wamid
    ON whatsapp_recipient_attempts (wamid) WHERE wamid IS NOT NULL;

-- Failures not yet looked at by the retry sweep: whatever statement fails a row (a send
-- result, a status webhook, the in-doubt policy), the row lands here in that statement, so
-- no failure is missed across a crash. seq tells a later failure of the same row (after a
-- revive) from the one the sweep read.
CREATE SEQUENCE whatsapp_retry_inbox_seq;
CREATE TABLE whatsapp_retry_inbox (
    recipient_id    bigint PRIMARY KEY,
    campaign_id     uuid NOT NULL,
    seq             bigint NOT NULL DEFAULT nextval('whatsapp_retry_inbox_seq')
);
CREATE INDEX whatsapp_retry_inbox_campaign ON whatsapp_retry_inbox (campaign_id);

CREATE FUNCTION whatsapp_recipients_failed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO whatsapp_retry_inbox (recipient_id, campaign_id)
    VALUES (NEW.id, NEW.campaign_id)
    ON CONFLICT (recipient_id) DO UPDATE SET seq = excluded.seq;
    RETURN NULL;
END $$;

-- Row-level with a WHEN clause: the claim, hand-over and send statements (no row becomes
-- failed) pay one comparison per row and never call the function.
CREATE TRIGGER whatsapp_recipients_failed_inbox
    AFTER UPDATE OF status ON whatsapp_campaign_recipients
    FOR EACH ROW
    WHEN (NEW.status = 'failed' AND OLD.status <> 'failed')
    EXECUTE FUNCTION whatsapp_recipients_failed();

-- Progress shows the rows waiting for a retry: a tiny partial index, counted per campaign.
CREATE INDEX whatsapp_recipients_retry_waiting
    ON whatsapp_campaign_recipients (campaign_id) WHERE status = 'pending' AND retries > 0;
