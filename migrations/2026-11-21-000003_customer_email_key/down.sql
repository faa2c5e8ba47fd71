DROP INDEX customers_email_key;
CREATE UNIQUE INDEX customers_email_key ON customers (lower(email));
ALTER TABLE customers DROP COLUMN email_key;
