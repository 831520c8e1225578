-- The per-variant counters' trigger (0016), cheaper on the statements of campaigns without
-- variants and on those of A/B campaigns alike; what it counts is unchanged.
--
-- Early exit on new_rows alone: a row's variant is set at ingest and only ever moved to
-- another variant (a claim after a decision), never back to NULL, so a statement with no
-- variant in its new rows had none in its old ones. One scan of one transition table, where
-- 0016 scanned both.
--
-- One join instead of two: each changed row joined once to its old self gives its two
-- contributions, plus once as it is now and minus once as it was (a LATERAL pair); 0016
-- joined the transition tables twice, once per sign.
CREATE OR REPLACE FUNCTION whatsapp_recipients_variants_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows WHERE variant IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    INSERT INTO whatsapp_campaign_variants AS v
        (campaign_id, variant, sent, delivered, read, failed)
    SELECT d.campaign_id, d.variant, sum(d.sent), sum(d.delivered), sum(d.read), sum(d.failed)
    FROM new_rows n
    JOIN old_rows o ON o.id = n.id
    CROSS JOIN LATERAL (VALUES
        (n.campaign_id, n.variant,
         (n.sent_at IS NOT NULL)::int,
         (n.status IN ('delivered', 'read'))::int,
         (n.status = 'read')::int,
         (n.status = 'failed')::int),
        (o.campaign_id, o.variant,
         -(o.sent_at IS NOT NULL)::int,
         -(o.status IN ('delivered', 'read'))::int,
         -(o.status = 'read')::int,
         -(o.status = 'failed')::int)
    ) AS d (campaign_id, variant, sent, delivered, read, failed)
    WHERE d.variant IS NOT NULL
      AND (n.status <> o.status OR (n.sent_at IS NULL) <> (o.sent_at IS NULL)
           OR n.variant IS DISTINCT FROM o.variant)
    GROUP BY 1, 2
    HAVING sum(abs(d.sent)) + sum(abs(d.delivered)) + sum(abs(d.read)) + sum(abs(d.failed)) > 0
    ORDER BY 1, 2
    ON CONFLICT (campaign_id, variant) DO UPDATE
    SET sent = v.sent + excluded.sent,
        delivered = v.delivered + excluded.delivered,
        read = v.read + excluded.read,
        failed = v.failed + excluded.failed;
    RETURN NULL;
END $$;

-- Templates known paused: a PAUSED / DISABLED / REJECTED status webhook not yet followed by
-- APPROVED / REINSTATED, per WABA ('' when the webhook named none) and language ('' for any).
-- A template hold is released only once none of the campaign's live templates (every
-- variant's; the winner's alone once one is recorded) is in here: with A and B both paused,
-- A approved leaves the campaign held until B is too. A handful of rows (templates, not
-- recipients).
CREATE TABLE whatsapp_paused_templates (
    waba_id     text NOT NULL DEFAULT '',
    name        text NOT NULL,
    language    text NOT NULL DEFAULT '',
    paused_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, waba_id, language)
);
