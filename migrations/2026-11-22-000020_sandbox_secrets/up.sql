-- Secrets Ordo generates for itself in sandbox mode (embedded database, no
-- ORDO_JWT_SECRET): created once, on the first start, and reused on every later
-- start so that tokens survive restarts. Never used with an external database,
-- whose secrets come from the environment.
CREATE TABLE sandbox_secrets (
    name       text PRIMARY KEY,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
