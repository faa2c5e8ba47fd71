-- Scheduled jobs, shared by every instance, and their runs.

CREATE TABLE jobs (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9-]{0,63}$'),
    -- A cron expression, parsed by the domain; UTC.
    schedule    text NOT NULL,
    enabled     boolean NOT NULL,
    -- NULL while disabled.
    next_run_at timestamptz,
    version     integer NOT NULL CHECK (version >= 1),
    updated_at  timestamptz NOT NULL
);

CREATE TABLE job_runs (
    id               uuid PRIMARY KEY,
    job_name         text NOT NULL REFERENCES jobs (name) ON DELETE CASCADE,
    trigger          text NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    status           text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    requested_at     timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    instance         text,
    lease_expires_at timestamptz,
    attempts         integer NOT NULL CHECK (attempts >= 0),
    error            text,
    CHECK ((status = 'running') = (lease_expires_at IS NOT NULL)),
    CHECK ((status IN ('succeeded', 'failed')) = (finished_at IS NOT NULL))
);
-- The guarantees behind the domain's claim rules, whatever an instance does: a
-- job never runs twice at once, and runs queue at most one deep.
CREATE UNIQUE INDEX job_runs_one_running_idx ON job_runs (job_name) WHERE status = 'running';
CREATE UNIQUE INDEX job_runs_one_pending_idx ON job_runs (job_name) WHERE status = 'pending';
-- A job's history, newest first (ids are time-ordered UUID v7).
CREATE INDEX job_runs_history_idx ON job_runs (job_name, id DESC);
-- Pruning by age.
CREATE INDEX job_runs_finished_idx ON job_runs (finished_at) WHERE finished_at IS NOT NULL;
