-- API clients: programs calling Ordo with an API key.

CREATE TABLE api_clients (
    id                    uuid PRIMARY KEY,
    name                  text NOT NULL,
    -- The contact address in the clear, for now: the one column that encryption
    -- at rest replaces (the repository reads and writes it in one place).
    email_plaintext       text NOT NULL,
    -- CIDR blocks as the domain normalises them (`203.0.113.0/24`, `::1/128`);
    -- empty allows every address.
    ip_allowlist          text[] NOT NULL DEFAULT '{}',
    rate_limit_per_minute integer NOT NULL CHECK (rate_limit_per_minute > 0),
    rate_limit_burst      integer NOT NULL CHECK (rate_limit_burst > 0),
    -- SHA-256 of the whole key, hex: a dump of this table yields no usable key.
    -- Unique, and the index every API-key request is resolved by.
    key_digest            text NOT NULL CONSTRAINT api_clients_key_digest_key UNIQUE,
    -- The key's public part, to tell keys apart in lists and logs.
    key_prefix            text NOT NULL,
    -- When the current key was issued: access tokens obtained before it are void.
    key_issued_at         timestamptz NOT NULL,
    version               integer NOT NULL DEFAULT 1,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);
