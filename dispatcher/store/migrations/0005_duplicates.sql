-- One message per address per campaign (DESIGN.md, "Delivery guarantees").
--
-- A list that names the same phone or BSUID twice (in one upload or across appends) keeps
-- every row, but only the first one of each address is ever sent: the others are inserted
-- with the status 'duplicate', which is final (never claimed, never sent, never moved) and
-- counted in total_duplicates. Recipients.ingest decides which rows are duplicates while it
-- holds the campaign row locked, so concurrent appends to one campaign take turns.

-- Last in precedence order: GREATEST(duplicate, any status) stays duplicate, so no webhook
-- or send result can move it (the new value is usable only once this file is committed).
-- After 'suppressed' (0003), the other final status that nothing sends.
ALTER TYPE whatsapp_recipient_status ADD VALUE IF NOT EXISTS 'duplicate' AFTER 'suppressed';

ALTER TABLE whatsapp_campaigns ADD COLUMN total_duplicates bigint NOT NULL DEFAULT 0;

-- Ingest's lookup of the addresses a campaign already has. The address is the phone or the
-- BSUID as given (an E.164 phone starts with '+', a BSUID never does: they cannot collide),
-- the same key as whatsapp_portfolio_contacts.recipient.
CREATE INDEX whatsapp_recipients_address
    ON whatsapp_campaign_recipients (campaign_id, (coalesce(phone, user_id)));

-- Statement-level, like the counters of 0001 (a trigger of its own rather than a new version
-- of theirs, so that another migration replacing those functions cannot drop this counter).
CREATE FUNCTION whatsapp_recipients_duplicates_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    FOR d IN
        SELECT campaign_id, count(*) AS duplicates
        FROM new_rows WHERE status = 'duplicate'
        GROUP BY campaign_id ORDER BY campaign_id
    LOOP
        UPDATE whatsapp_campaigns
        SET total_duplicates = total_duplicates + d.duplicates, updated_at = now()
        WHERE id = d.campaign_id;
    END LOOP;
    RETURN NULL;
END $$;

-- No statement moves a row into or out of 'duplicate' (see the enum order above); this keeps
-- the counter exact even if one ever did, and costs two scans of the transition tables,
-- no join, when none does.
CREATE FUNCTION whatsapp_recipients_duplicates_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM old_rows WHERE status = 'duplicate')
       AND NOT EXISTS (SELECT 1 FROM new_rows WHERE status = 'duplicate') THEN
        RETURN NULL;
    END IF;
    FOR d IN
        SELECT n.campaign_id,
               sum((n.status = 'duplicate')::int - (o.status = 'duplicate')::int) AS duplicates
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE (n.status = 'duplicate') <> (o.status = 'duplicate')
        GROUP BY n.campaign_id ORDER BY n.campaign_id
    LOOP
        UPDATE whatsapp_campaigns
        SET total_duplicates = total_duplicates + d.duplicates, updated_at = now()
        WHERE id = d.campaign_id;
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER whatsapp_recipients_count_duplicates_insert
    AFTER INSERT ON whatsapp_campaign_recipients
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION whatsapp_recipients_duplicates_inserted();

CREATE TRIGGER whatsapp_recipients_count_duplicates_update
    AFTER UPDATE ON whatsapp_campaign_recipients
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION whatsapp_recipients_duplicates_updated();
