-- The swarm target (SPEC §15). A service's replica count: NULL until a swarm release with an
-- explicit `replicas` goes live or the service is scaled (a swarm release then runs
-- `spec.replicas or services.replicas or 1` tasks).
ALTER TABLE services ADD COLUMN replicas INTEGER CHECK (replicas BETWEEN 1 AND 100);

-- A `registry` credential ({username, password}, for image pushes). SQLite cannot change a
-- CHECK in place: the table is made again (nothing references it).
CREATE TABLE credentials_new (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type       TEXT NOT NULL CHECK (type IN ('deploy_key', 'token', 'registry')),
    name       TEXT NOT NULL,
    secret_enc TEXT NOT NULL,                 -- encrypted (dployr.crypto); never returned
    created_at TEXT NOT NULL
);
INSERT INTO credentials_new (id, owner_id, type, name, secret_enc, created_at)
    SELECT id, owner_id, type, name, secret_enc, created_at FROM credentials ORDER BY rowid;
DROP TABLE credentials;
ALTER TABLE credentials_new RENAME TO credentials;
CREATE INDEX credentials_owner ON credentials (owner_id, created_at);
