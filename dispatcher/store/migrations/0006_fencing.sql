-- Fencing: one writer per number, one coordinator per database, and in-doubt sends.
--
-- An instance actor's incarnation takes the next epoch of its instance when it starts;
-- marking rows 'sending' and writing send results compare it in the same statement, so a
-- replaced incarnation whose process still runs (a partition, a long SIGSTOP) changes
-- nothing. A row records the epoch that marked it 'sending' (sender_epoch): a batch read
-- again finds its rows already in a sender's hands and sends none of them twice.
ALTER TABLE whatsapp_instances ADD COLUMN epoch bigint NOT NULL DEFAULT 0;

ALTER TABLE whatsapp_campaign_recipients
    ADD COLUMN sender_epoch bigint,
    -- Set while the row is 'sending' but its send's outcome is unknown (the sender died
    -- after the request left, or the answer timed out): when the send was made, or (for a
    -- dead sender) when that was found out. Resolved by its status webhook, or after a
    -- bound tied to webhook progress by the in-doubt policy. The counters keep counting the
    -- row as 'sending', so its campaign does not complete while it is in doubt.
    ADD COLUMN in_doubt_at timestamptz;
CREATE INDEX whatsapp_recipients_in_doubt
    ON whatsapp_campaign_recipients (in_doubt_at) WHERE in_doubt_at IS NOT NULL;

-- One active coordinator per database: the holder renews its lease; another takes it only
-- once it expired (database time, so hosts' clocks do not matter). The epoch grows with
-- every change of holder and fences the coordinator's claims.
CREATE TABLE whatsapp_coordinator_lease (
    name            text PRIMARY KEY,
    holder          text NOT NULL,
    epoch           bigint NOT NULL,
    acquired_at     timestamptz NOT NULL,
    renewed_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL
);
