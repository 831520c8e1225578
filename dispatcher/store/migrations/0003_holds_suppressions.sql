-- Campaign holds and the marketing suppression list (Meta's error classes, DESIGN.md).
--
-- 'held': the campaign's template cannot be sent (132001, 132007, 132015, 132016, 131063, or a
-- PAUSED / DISABLED / REJECTED template status webhook), or most of its first sends failed with
-- a bad parameter. Nothing of it is routed; its recipients stay pending, none failed one by one.
-- Released by the template status webhook (APPROVED / REINSTATED, template holds only) or by
-- the operator (resume).
ALTER TYPE whatsapp_campaign_status ADD VALUE IF NOT EXISTS 'held' AFTER 'paused';

-- 'suppressed': the user stopped marketing messages (131050 or a user_preferences stop);
-- final, never sent, counted apart. Last in precedence: no status moves it.
ALTER TYPE whatsapp_recipient_status ADD VALUE IF NOT EXISTS 'suppressed' AFTER 'failed';

ALTER TABLE whatsapp_campaigns
    ADD COLUMN hold_kind text CHECK (hold_kind IN ('template', 'parameters')),
    ADD COLUMN total_suppressed bigint NOT NULL DEFAULT 0;

-- Per business portfolio: the addresses (E.164 phone or BSUID) not to send marketing to.
CREATE TABLE whatsapp_suppressions (
    business_id     text NOT NULL,
    address         text NOT NULL,
    reason          text NOT NULL DEFAULT '',
    source          text NOT NULL DEFAULT 'operator',
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (business_id, address)
);

-- total_suppressed follows the rows, as the other counters do (0001's header), in its own
-- trigger: the status literal is only read when the function runs, after this migration.
CREATE FUNCTION whatsapp_recipients_suppressed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    FOR d IN
        SELECT n.campaign_id,
               sum((n.status::text = 'suppressed')::int - (o.status::text = 'suppressed')::int)
                   AS suppressed
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status <> o.status
        GROUP BY n.campaign_id ORDER BY n.campaign_id
    LOOP
        IF d.suppressed <> 0 THEN
            UPDATE whatsapp_campaigns
            SET total_suppressed = total_suppressed + d.suppressed
            WHERE id = d.campaign_id;
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER whatsapp_recipients_count_suppressed
    AFTER UPDATE ON whatsapp_campaign_recipients
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION whatsapp_recipients_suppressed();
