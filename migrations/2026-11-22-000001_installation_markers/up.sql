-- One-time events of an installation, recorded in the database itself so that they
-- survive restarts and whatever is deleted later (e.g. "the sample data was loaded").
CREATE TABLE installation_markers (
    name        text PRIMARY KEY,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- A database that already has products was set up by an earlier version, which
-- loaded the sample data (or was given real data): never load it again.
INSERT INTO installation_markers (name)
SELECT 'sample-data' WHERE EXISTS (SELECT 1 FROM products);
