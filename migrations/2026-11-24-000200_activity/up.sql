-- Activity: raw hits, partitioned by day, and hourly counts per principal.

-- One row per hit. Partitioned by day (declarative range partitions named
-- activity_hits_YYYYMMDD): dropping a day past the retention is a catalog change,
-- not a DELETE of millions of rows. Partitions are created ahead by the writer
-- (activity_hits_ensure_partitions). Nothing reads this table on the request path:
-- the usage figures read activity_hourly.
CREATE TABLE activity_hits (
    occurred_at     timestamptz NOT NULL,
    principal_kind  text NOT NULL CHECK (principal_kind IN ('user', 'client')),
    principal_id    uuid NOT NULL,
    method          text NOT NULL,
    -- A route template (`/v1/orders/{id}`) for observed hits; what the client
    -- reported for reported ones.
    endpoint        text NOT NULL,
    status          smallint,
    latency_us      integer,
    ip              inet,
    source          text NOT NULL CHECK (source IN ('reported', 'observed')),
    batch_id        uuid NOT NULL
) PARTITION BY RANGE (occurred_at);

-- Hits arrive in time order, so a block range index on time is tiny and enough
-- for the scans by time that audits and exports make.
CREATE INDEX activity_hits_occurred_at_brin ON activity_hits USING brin (occurred_at);

-- The partition of each day from `first_day` to `last_day`, when missing. Several
-- writers may call it at once: the advisory lock serialises them, since two
-- concurrent CREATE TABLE … PARTITION OF of one name would fail.
CREATE FUNCTION activity_hits_ensure_partitions(first_day date, last_day date)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    day date;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('activity_hits_partitions'));
    day := first_day;
    WHILE day <= last_day LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF activity_hits FOR VALUES FROM (%L) TO (%L)',
            'activity_hits_' || to_char(day, 'YYYYMMDD'),
            (day::timestamp AT TIME ZONE 'UTC'),
            ((day + 1)::timestamp AT TIME ZONE 'UTC')
        );
        day := day + 1;
    END LOOP;
END;
$$;

-- Hits per principal per hour: what every usage figure and the requests-per-hour
-- report read. Updated in the transaction that stores the raw hits, one upsert per
-- (principal, hour) of a batch.
CREATE TABLE activity_hourly (
    principal_kind  text NOT NULL CHECK (principal_kind IN ('user', 'client')),
    principal_id    uuid NOT NULL,
    -- The start of the hour, UTC.
    hour            timestamptz NOT NULL,
    requests        bigint NOT NULL CHECK (requests > 0),
    PRIMARY KEY (principal_kind, principal_id, hour)
);

-- Windows over all principals (top clients, hourly figures) scan by hour.
CREATE INDEX activity_hourly_hour ON activity_hourly (hour, principal_kind);

-- The batches written, so that a writer that retries a batch whose commit it
-- could not confirm does not count it twice. Rows older than a day are pruned
-- with the raw hits.
CREATE TABLE activity_batches (
    id          uuid PRIMARY KEY,
    written_at  timestamptz NOT NULL DEFAULT now()
);
