-- Secrets sealed at rest (dispatcher/crypto.py): access tokens and the deployment's keys are
-- stored as AES-GCM boxes that name the key they are sealed under, never in plain text.
--
-- SQL cannot encrypt: the rows written before this migration keep their plain value until
-- the first process that opens the store with its keyring seals them (dispatcher/store/
-- sealing.py), clears the plain column and rewrites the tables (VACUUM FULL), so no old
-- row version keeps the plain value in the table files. A row holds one form, never both.
ALTER TABLE whatsapp_instance_tokens
    ALTER COLUMN access_token DROP NOT NULL,
    ADD COLUMN sealed_token bytea,
    ADD CONSTRAINT whatsapp_instance_tokens_one_form
        CHECK ((access_token IS NULL) <> (sealed_token IS NULL));

ALTER TABLE dispatcher_secrets
    ALTER COLUMN value DROP NOT NULL,
    ADD COLUMN sealed bytea,
    ADD CONSTRAINT dispatcher_secrets_one_form CHECK ((value IS NULL) <> (sealed IS NULL));
