-- Recovery state that must outlive a coordinator and Redis itself.

-- A 131064 hold (messaging limit reached after template violations): Meta holds the whole
-- portfolio until it ends; none of its numbers gets work meanwhile, across restarts. It ends
-- by an operator's action (a number registered again, or an explicit release).
ALTER TABLE whatsapp_portfolios
    ADD COLUMN held_at      timestamptz,
    ADD COLUMN hold_reason  text;

-- One row per queue (its Redis key prefix): the marker a coordinator also keeps in Redis.
-- Redis without the marker lost its data (a restart without persistence, a flush): the
-- queue is rebuilt from Postgres. lost_at is when that was last seen; while it is set,
-- 'sending' rows of batches that vanished are resolved as in doubt once nobody holds them.
CREATE TABLE whatsapp_queue_markers (
    queue_prefix    text PRIMARY KEY,
    token           text NOT NULL,
    lost_at         timestamptz,
    losses          integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
