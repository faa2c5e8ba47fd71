-- E-mail addresses are unique regardless of case in any script (Éx@example.com is
-- éx@example.com). PostgreSQL's lower() depends on the database's collation and
-- leaves non-ASCII letters alone under "C", so Ordo stores the key itself: the
-- address lower-cased by Unicode rules (`Email::lookup_key`). Rows written before
-- this migration get lower(email), which is what the old index compared.
ALTER TABLE customers ADD COLUMN email_key text;
UPDATE customers SET email_key = lower(email);
ALTER TABLE customers ALTER COLUMN email_key SET NOT NULL;
DROP INDEX customers_email_key;
CREATE UNIQUE INDEX customers_email_key ON customers (email_key);
