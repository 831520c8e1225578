-- Send windows, expiry and a rate cap per campaign (issue 15; README, "Send windows").
--
-- send_window: the days and hours it may send, in its zone or each recipient's (the shape
-- api/schemas.py SendWindowIn.stored writes, read by dispatcher/windows.py). Outside it a
-- recipient stays pending: not routed at all while a campaign-zone window is closed, or
-- given back with not_before (0015) at its own window's next opening.
-- expires_at: past it, unsent recipients (pending, or queued and not yet handed to a sender)
-- end 'expired' and the campaign completes. max_per_minute: a cap on its routing rate.
ALTER TABLE whatsapp_campaigns
    ADD COLUMN send_window jsonb,
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN max_per_minute integer CHECK (max_per_minute > 0),
    ADD COLUMN total_expired bigint NOT NULL DEFAULT 0;

-- Final, never sent; last in precedence with the other final statuses nothing sends
-- (0003, 0005): no webhook or send result moves it.
ALTER TYPE whatsapp_recipient_status ADD VALUE IF NOT EXISTS 'expired' AFTER 'duplicate';

-- The coordinator's sweep finds running campaigns past their expiry.
CREATE INDEX whatsapp_campaigns_expiring ON whatsapp_campaigns (expires_at)
    WHERE status = 'running' AND expires_at IS NOT NULL;

-- total_expired follows the rows, as 0005's duplicate counter does, in a trigger of its
-- own; the status is compared as text: the new enum value is only usable once this file
-- is committed, and the function body is only read when it runs. Only the expiry sweep
-- moves rows into 'expired' (one campaign per statement) and nothing moves them out, so a
-- single UPDATE ... FROM does: no lock order across campaigns to keep.
CREATE FUNCTION whatsapp_recipients_expired() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status::text = 'expired') THEN
        RETURN NULL;
    END IF;
    UPDATE whatsapp_campaigns c
    SET total_expired = c.total_expired + d.expired, updated_at = now()
    FROM (SELECT n.campaign_id, count(*) AS expired
          FROM new_rows n JOIN old_rows o ON o.id = n.id
          WHERE n.status::text = 'expired' AND o.status::text <> 'expired'
          GROUP BY n.campaign_id) d
    WHERE c.id = d.campaign_id;
    RETURN NULL;
END $$;

CREATE TRIGGER whatsapp_recipients_count_expired AFTER UPDATE ON whatsapp_campaign_recipients
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION whatsapp_recipients_expired();
