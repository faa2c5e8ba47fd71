-- Per-row claims for the checkouts reconciliation resumes and the outbox rows
-- the dispatchers deliver, and a lease for idempotency keys whose first
-- request is still running.
--
-- A worker claims a row by writing a fresh claim token and how long it holds
-- the row (claimed_until); it records its result only where the token is still
-- its own, so a worker whose lease ran out (and whose row another worker took
-- up meanwhile) cannot overwrite the newer attempt. next_attempt_at stays what
-- it says: when the row is due again (with backoff), not who holds it.

ALTER TABLE checkouts
    ADD COLUMN claim_token   uuid,
    ADD COLUMN claimed_until timestamptz;

ALTER TABLE outbox
    ADD COLUMN claim_token   uuid,
    ADD COLUMN claimed_until timestamptz;

-- Until when the first request holds its key: a repetition after that (the
-- first request's process died) takes the key over instead of being refused
-- as in use forever. Rows written before this column get the lease a request
-- takes now (a minute from its start).
ALTER TABLE idempotency_keys ADD COLUMN lease_until timestamptz;
UPDATE idempotency_keys SET lease_until = created_at + interval '1 minute';
ALTER TABLE idempotency_keys ALTER COLUMN lease_until SET NOT NULL;
