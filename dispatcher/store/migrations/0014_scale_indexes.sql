-- Indexes for statements that must stay off sequential scans at 10 million recipients
-- (``make bench-scale`` prints every hot-path plan; tests/store/test_hot_path_plans.py
-- fails when one regresses).

-- Pruning the portfolio contacts past the window, oldest first, in bounded batches: the
-- (business_id, last_sent_at) index serves one portfolio's window, not a scan by age
-- across portfolios.
CREATE INDEX whatsapp_portfolio_contacts_last_sent
    ON whatsapp_portfolio_contacts (last_sent_at);

-- A campaign's recipients in id order, whatever their status (the listing's keyset pages):
-- without it the first page walked the primary key from the table's first row, reading
-- every recipient of the campaigns created before (5 million at 10 million rows).
CREATE INDEX whatsapp_recipients_campaign_id
    ON whatsapp_campaign_recipients (campaign_id, id);
