-- In doubt means 'sending' with in_doubt_at set. Rows that left 'sending' (a webhook or a send
-- result settled them) used to keep their in_doubt_at, so the partial index of 0006 grew
-- with every row ever in doubt, and the in-doubt policy's sweep (every few seconds) and
-- the in-doubt count scanned them all. Those rows are cleared now (the writers clear it as
-- a row leaves 'sending'), and the index holds only the rows in doubt now.
UPDATE whatsapp_campaign_recipients
SET in_doubt_at = NULL
WHERE in_doubt_at IS NOT NULL AND status <> 'sending';

DROP INDEX IF EXISTS whatsapp_recipients_in_doubt;
CREATE INDEX whatsapp_recipients_in_doubt_now
    ON whatsapp_campaign_recipients (in_doubt_at)
    WHERE status = 'sending' AND in_doubt_at IS NOT NULL;
