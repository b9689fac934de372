-- Outbound webhooks and their deliveries (SPEC §7); deliveries are made from the event log.
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,                 -- JSON array of event types; ["*"] = every type
    secret_enc TEXT NOT NULL,                 -- encrypted (dployr.crypto); shown once at create
    active     INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    start_seq  INTEGER NOT NULL DEFAULT 0,    -- events up to this seq predate the webhook
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX webhooks_owner ON webhooks (owner_id, created_at);

CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    body             TEXT NOT NULL,           -- the exact bytes sent (and signed) each attempt
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_status_code INTEGER,
    last_error       TEXT,
    last_response    TEXT,                    -- the first 1 KiB of the last response body
    last_latency_ms  INTEGER,
    next_attempt_at  TEXT,
    created_at       TEXT NOT NULL,
    delivered_at     TEXT
);
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, created_at);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
