-- A/B testing of templates (issue 15): a campaign's variants, each recipient's variant, the
-- per-variant counters, and the automatic winner's decision.
--
-- ab_test: {"variants": [{"label", "weight", "template"}], "confidence", "auto_winner"}
-- (dispatcher/ab/settings.py); NULL for a campaign of one template. Its ``template`` column
-- then holds the first variant's, so whatever reads one template still finds one.
ALTER TABLE whatsapp_campaigns ADD COLUMN ab_test jsonb;

-- The index into ab_test.variants of the template this recipient is (or was) sent. Chosen
-- at ingest from a hash of (campaign, address) by weight (dispatcher/ab/assign.py); a claim
-- made after a winner was decided moves it to the winner. NULL without variants. No default:
-- adding the column is a catalog change only, and COPY of a campaign without variants
-- writes nothing more per row.
ALTER TABLE whatsapp_campaign_recipients ADD COLUMN variant smallint;

-- Per-variant counters, kept like the campaign's (0001's header): by a statement-level
-- trigger inside the statement that moves the rows, never by code. Same meanings as the
-- campaign's: sent = Meta accepted it (sent_at known), delivered = delivered or read. Only
-- what happens after a send is counted: a row is inserted with none of it, so no trigger
-- runs per ingest (measured: counting pending rows per variant at insert, an aggregate
-- over the COPY's rows, cost the A/B ingest about a tenth of its throughput). A variant's
-- row appears with its first send.
CREATE TABLE whatsapp_campaign_variants (
    campaign_id     uuid NOT NULL REFERENCES whatsapp_campaigns (id) ON DELETE CASCADE,
    variant         smallint NOT NULL,
    sent            bigint NOT NULL DEFAULT 0,
    delivered       bigint NOT NULL DEFAULT 0,
    read            bigint NOT NULL DEFAULT 0,
    failed          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, variant)
);

-- The automatic winner, decided once per campaign: the primary key makes the first decision
-- the only one (a restarted coordinator, or a standby that took over, finds it and decides
-- nothing again). figures: per-variant sent, read, rate and interval, and each comparison's
-- z and p, as they were when it was decided.
CREATE TABLE whatsapp_variant_winners (
    campaign_id     uuid PRIMARY KEY REFERENCES whatsapp_campaigns (id) ON DELETE CASCADE,
    variant         smallint NOT NULL,
    decided_at      timestamptz NOT NULL DEFAULT now(),
    z               double precision NOT NULL,
    p_value         double precision NOT NULL,
    figures         jsonb NOT NULL
);

-- Counter rows are upserted in (campaign, variant) order, after 0001's trigger (triggers of
-- one event fire in name order: count_update < count_variants_update) locked the campaign
-- row: every statement takes the two kinds of lock in the same order.
--
-- A row that changes variant (claimed after a decision) leaves its old variant's counters
-- and joins the new one's: each row counts once as it is now (new_rows) and minus once as
-- it was (old_rows). Statements on campaigns without variants cost two scans of the
-- transition tables, no join.
CREATE FUNCTION whatsapp_recipients_variants_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows WHERE variant IS NOT NULL)
       AND NOT EXISTS (SELECT 1 FROM old_rows WHERE variant IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    INSERT INTO whatsapp_campaign_variants AS v
        (campaign_id, variant, sent, delivered, read, failed)
    SELECT campaign_id, variant, sum(sent), sum(delivered), sum(read), sum(failed)
    FROM (
        SELECT n.campaign_id, n.variant,
               (n.sent_at IS NOT NULL)::int AS sent,
               (n.status IN ('delivered', 'read'))::int AS delivered,
               (n.status = 'read')::int AS read,
               (n.status = 'failed')::int AS failed
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.variant IS NOT NULL
          AND (n.status <> o.status OR (n.sent_at IS NULL) <> (o.sent_at IS NULL)
               OR n.variant IS DISTINCT FROM o.variant)
        UNION ALL
        SELECT o.campaign_id, o.variant,
               -(o.sent_at IS NOT NULL)::int,
               -(o.status IN ('delivered', 'read'))::int,
               -(o.status = 'read')::int,
               -(o.status = 'failed')::int
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.variant IS NOT NULL
          AND (n.status <> o.status OR (n.sent_at IS NULL) <> (o.sent_at IS NULL)
               OR n.variant IS DISTINCT FROM o.variant)
    ) d
    GROUP BY 1, 2
    HAVING sum(abs(sent)) + sum(abs(delivered)) + sum(abs(read)) + sum(abs(failed)) > 0
    ORDER BY 1, 2
    ON CONFLICT (campaign_id, variant) DO UPDATE
    SET sent = v.sent + excluded.sent,
        delivered = v.delivered + excluded.delivered,
        read = v.read + excluded.read,
        failed = v.failed + excluded.failed;
    RETURN NULL;
END $$;

CREATE TRIGGER whatsapp_recipients_count_variants_update
    AFTER UPDATE ON whatsapp_campaign_recipients
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION whatsapp_recipients_variants_updated();
