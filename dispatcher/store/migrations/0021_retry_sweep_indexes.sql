-- The retry sweep and the expiry of stopped campaigns, at scale (issue 15's review).
--
-- The sweep reads the retry inbox oldest first (dispatcher/store/attempts.py, ORDER BY seq
-- LIMIT a batch): after a mass failure the inbox holds every failed row, and without an index
-- each pass sorted all of it to take a batch.
CREATE INDEX whatsapp_retry_inbox_by_seq ON whatsapp_retry_inbox (seq);
-- A campaign completes only with no entry in the inbox: its first entry by this index (a
-- NOT EXISTS on 0018's campaign index was planned as a scan of the whole inbox, expecting a
-- match early, when another campaign's mass failure filled it). It serves the per-campaign
-- count as well, so it replaces 0018's.
CREATE INDEX whatsapp_retry_inbox_campaign_seq ON whatsapp_retry_inbox (campaign_id, seq);
DROP INDEX whatsapp_retry_inbox_campaign;

-- A paused or held campaign past its expires_at expires too (dispatcher/store/windows.py):
-- the coordinator finds them each round from this tiny index (0017's covers running ones).
CREATE INDEX whatsapp_campaigns_expiring_stopped ON whatsapp_campaigns (expires_at)
    WHERE status IN ('paused', 'held') AND expires_at IS NOT NULL;
