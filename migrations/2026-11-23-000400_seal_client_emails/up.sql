-- API clients' contact addresses are stored sealed (AES-256-GCM under the data key,
-- see ordo-crypto's DataKeyring), like customers' contacts. The address is neither
-- unique nor searched, so it needs no blind index. SQL has no key, so rows are
-- sealed by Ordo itself, at startup after this migration (ordo_postgres::sealing);
-- until then a row keeps its plaintext column, and the repository reads either form.
ALTER TABLE api_clients
    ADD COLUMN email_sealed bytea,
    -- The data key the row's sealed values are sealed under.
    ADD COLUMN data_key_id  text,
    ALTER COLUMN email_plaintext DROP NOT NULL;

-- A row is in exactly one form, never half of each.
ALTER TABLE api_clients ADD CONSTRAINT api_clients_plaintext_or_sealed CHECK (
    (email_plaintext IS NOT NULL AND email_sealed IS NULL AND data_key_id IS NULL)
    OR
    (email_plaintext IS NULL AND email_sealed IS NOT NULL AND data_key_id IS NOT NULL)
);

-- Every start looks for rows still in plaintext; once all are sealed this index is
-- empty and the look costs nothing.
CREATE INDEX api_clients_plaintext ON api_clients (id) WHERE data_key_id IS NULL;
