-- Statuses from Meta's webhooks keep the failure's error_data.details (shown in the
-- recipient listing), and each deployment keeps the key of its callback-data tag: one
-- key for every process, stable across restarts (dispatcher/meta/callback_tag.py).
ALTER TABLE whatsapp_campaign_recipients ADD COLUMN IF NOT EXISTS error_details text;

CREATE TABLE IF NOT EXISTS dispatcher_secrets (
    name text PRIMARY KEY,
    value bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
