ALTER TABLE idempotency_keys DROP COLUMN lease_until;
ALTER TABLE outbox DROP COLUMN claimed_until, DROP COLUMN claim_token;
ALTER TABLE checkouts DROP COLUMN claimed_until, DROP COLUMN claim_token;
