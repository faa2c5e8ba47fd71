-- Sealed values cannot be opened without the data key, which SQL does not have:
-- going back is possible only while no row is sealed yet.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM customers WHERE email_sealed IS NOT NULL) THEN
        RAISE EXCEPTION 'customers hold sealed e-mail addresses and phone numbers; reverting would lose them';
    END IF;
END
$$;

DROP INDEX customers_plaintext;
ALTER TABLE customers DROP CONSTRAINT customers_plaintext_or_sealed;
DROP INDEX customers_email_index;
ALTER TABLE customers
    DROP COLUMN email_sealed,
    DROP COLUMN email_index,
    DROP COLUMN phone_sealed,
    DROP COLUMN data_key_id,
    ALTER COLUMN email SET NOT NULL,
    ALTER COLUMN email_key SET NOT NULL;
