-- Sealed values cannot be opened without the data key, which SQL does not have:
-- going back is possible only while no row is sealed yet.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM api_clients WHERE email_sealed IS NOT NULL) THEN
        RAISE EXCEPTION 'api_clients hold sealed e-mail addresses; reverting would lose them';
    END IF;
END
$$;

DROP INDEX api_clients_plaintext;
ALTER TABLE api_clients DROP CONSTRAINT api_clients_plaintext_or_sealed;
ALTER TABLE api_clients
    DROP COLUMN email_sealed,
    DROP COLUMN data_key_id,
    ALTER COLUMN email_plaintext SET NOT NULL;
