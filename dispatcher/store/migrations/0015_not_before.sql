-- A pending recipient may wait: outside its campaign's send window, or for a retry's delay
-- (issue 15). ``not_before`` is when it may be claimed again; '-infinity' (every row that
-- never waited) sorts first, so a list that never waits is claimed in id order as before.
--
-- The constant default is a catalog change only (no table rewrite), and NOT NULL keeps the
-- claim's range scan a plain one: no OR, no NULLS handling.
ALTER TABLE whatsapp_campaign_recipients
    ADD COLUMN not_before timestamptz NOT NULL DEFAULT '-infinity';

-- The claim's scan: a campaign's pending rows that are due, earliest due first, then id.
-- Partial: only pending rows are in it (a row claimed leaves it), so it stays small whatever
-- the campaign's size, and a million rows waiting for their window are never walked past:
-- the range stops at now().
CREATE INDEX whatsapp_recipients_due
    ON whatsapp_campaign_recipients (campaign_id, not_before, id)
    WHERE status = 'pending';
