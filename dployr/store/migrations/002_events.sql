-- The event log (SPEC §7): every state change, in order. `seq` orders; `id` is the public evt_ id.

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    owner_id   TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX events_owner_seq ON events (owner_id, seq);
