-- The campaign listing (GET /campaigns, newest first, keyset pages on (created_at, id)): the
-- console reads it every second or so per tab, the active campaigns by status. Without these
-- indexes each call read the whole table and sorted it.

-- One or several statuses (`status = ANY(...)`), newest first: each status's rows in order.
CREATE INDEX whatsapp_campaigns_status_newest
    ON whatsapp_campaigns (status, created_at DESC, id DESC);

-- Any status, newest first: the first page reads its `limit` rows and stops.
CREATE INDEX whatsapp_campaigns_newest
    ON whatsapp_campaigns (created_at DESC, id DESC);
