-- Customers' e-mail addresses and phone numbers are stored sealed (AES-256-GCM under
-- the data key, see ordo-crypto's DataKeyring), with a keyed blind index of the
-- address for uniqueness. SQL has no key, so rows are sealed by Ordo itself, at
-- startup after this migration (ordo_postgres::sealing); until then a row keeps its
-- plaintext columns, and the repository reads either form.
ALTER TABLE customers
    ADD COLUMN email_sealed bytea,
    ADD COLUMN email_index  bytea,
    ADD COLUMN phone_sealed bytea,
    -- The data key every sealed value of the row is sealed under.
    ADD COLUMN data_key_id  text,
    ALTER COLUMN email DROP NOT NULL,
    ALTER COLUMN email_key DROP NOT NULL;

-- Uniqueness of sealed addresses, case-insensitively: the index is taken of the
-- address's lookup key (Unicode lower case), as email_key was.
CREATE UNIQUE INDEX customers_email_index ON customers (email_index);

-- A row is in exactly one form, never half of each: plaintext (as written before
-- this migration) or sealed.
ALTER TABLE customers ADD CONSTRAINT customers_plaintext_or_sealed CHECK (
    (email IS NOT NULL AND email_key IS NOT NULL
        AND email_sealed IS NULL AND email_index IS NULL AND phone_sealed IS NULL
        AND data_key_id IS NULL)
    OR
    (email IS NULL AND email_key IS NULL AND phone IS NULL
        AND email_sealed IS NOT NULL AND email_index IS NOT NULL
        AND data_key_id IS NOT NULL)
);

-- Every start looks for rows still in plaintext; once all are sealed this index is
-- empty and the look costs nothing, however many customers there are.
CREATE INDEX customers_plaintext ON customers (id) WHERE data_key_id IS NULL;
