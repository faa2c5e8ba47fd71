DROP TABLE outbox;
DROP TABLE checkouts;
DROP TABLE idempotency_keys;
