-- Proxy routes (SPEC §5): the source of truth the proxy config is rendered from.
CREATE TABLE routes (
    id          TEXT PRIMARY KEY,
    service_id  TEXT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    domain      TEXT NOT NULL,
    path_prefix TEXT NOT NULL DEFAULT '/',
    tls         TEXT NOT NULL CHECK (tls IN ('auto', 'off')),
    port        INTEGER,
    created_at  TEXT NOT NULL,
    UNIQUE (domain, path_prefix)
);
CREATE INDEX routes_service ON routes (service_id);
