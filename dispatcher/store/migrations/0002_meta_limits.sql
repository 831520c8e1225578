-- Where each portfolio's messaging limit came from, and the facts that map Meta's webhooks
-- to numbers (webhooks name a WABA by entry id and a number by its display phone number).

-- operator (override_tier), graph_api (the phone-number node), webhook
-- (business_capability_update / phone_number_quality_update), or unreadable (limit_error
-- holds the Graph API's error; the dispatcher then assumes DISPATCHER_UNREADABLE_LIMIT).
ALTER TABLE whatsapp_portfolios
    ADD COLUMN limit_source text
        CHECK (limit_source IN ('graph_api', 'webhook', 'unreadable')),
    ADD COLUMN limit_error text;

ALTER TABLE whatsapp_instances
    ADD COLUMN waba_id text,
    ADD COLUMN display_phone_number text;
CREATE INDEX whatsapp_instances_waba ON whatsapp_instances (waba_id) WHERE waba_id IS NOT NULL;
CREATE INDEX whatsapp_instances_display
    ON whatsapp_instances (display_phone_number) WHERE display_phone_number IS NOT NULL;

-- An operator's throughput wins over Meta's level, and a detected one must be re-read after
-- a throughput upgrade: tell them apart. Existing figures count as the operator's.
ALTER TABLE whatsapp_instances
    ADD COLUMN throughput_source text CHECK (throughput_source IN ('operator', 'graph_api'));
UPDATE whatsapp_instances SET throughput_source = 'operator' WHERE throughput_mps IS NOT NULL;
