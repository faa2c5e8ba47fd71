-- Identity: staff users who log in with a password, and their refresh tokens.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    -- The address lower-cased by the application (the one place that folds case,
    -- for writes and look-ups alike), so that Ada@Example.com is ada@example.com.
    email_key     text NOT NULL CONSTRAINT users_email_key UNIQUE,
    role          text NOT NULL CHECK (role IN ('admin', 'staff')),
    -- PHC string (Argon2id); never leaves the server.
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL,
    version       integer NOT NULL DEFAULT 1
);

-- Refresh tokens by SHA-256 digest only: a dump of this table yields no usable
-- token. A token is exchanged at most once (used_at set by a conditional UPDATE);
-- a family is the chain of tokens descending from one login.
CREATE TABLE refresh_tokens (
    hash       text PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  uuid NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Revoking a family (logout, reuse) updates every token of it.
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
-- Deleting a user cascades here; without an index that is a scan of every token.
CREATE INDEX refresh_tokens_user_id ON refresh_tokens (user_id);
