-- List hygiene (issue 15): a phone that has the E.164 shape but is in no numbering plan
-- (dispatcher/numbering.py: an unassigned area code, a wrong length for its country) does not
-- refuse its upload: its row is inserted 'invalid', final (never claimed, never sent, never
-- moved), and counted in total_invalid. BSUIDs are not phone numbers: never invalid.
--
-- An invalid row is never also a duplicate: ingest marks duplicates among the pending rows
-- only, and the same address always gets the same verdict, so an invalid address's repeats
-- are invalid too (each counted once, in total_invalid).

-- Last in precedence order, after 'expired' (0017): GREATEST(invalid, any status) stays
-- invalid, so no webhook or send result can move it.
ALTER TYPE whatsapp_recipient_status ADD VALUE IF NOT EXISTS 'invalid' AFTER 'expired';

ALTER TABLE whatsapp_campaigns ADD COLUMN total_invalid bigint NOT NULL DEFAULT 0;

-- Statement-level and of its own, as 0005's duplicate counter (see there why), on insert
-- only: no statement moves a row into or out of 'invalid'. Claims take pending rows; send
-- results, requeues and in-doubt resolutions move claimed rows only; ingest marks duplicates
-- among pending rows; webhook statuses take GREATEST, and 'invalid' is last. So the hot
-- paths' updates pay nothing for this counter. The status literal is compared as text: the
-- function is created in the transaction that adds the value, which may not use it yet.
-- One UPDATE, no loop in campaign order: the counter triggers of 0001 and 0005 (named before
-- this one, so fired first) already hold the statement's campaign rows, locked in id order.
CREATE FUNCTION whatsapp_recipients_invalid_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE whatsapp_campaigns c
    SET total_invalid = c.total_invalid + n.invalid, updated_at = now()
    FROM (SELECT campaign_id, count(*) AS invalid FROM new_rows
          WHERE status::text = 'invalid' GROUP BY campaign_id) n
    WHERE c.id = n.campaign_id;
    RETURN NULL;
END $$;

CREATE TRIGGER whatsapp_recipients_count_invalid_insert
    AFTER INSERT ON whatsapp_campaign_recipients
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION whatsapp_recipients_invalid_inserted();
