-- Stateful apps (SPEC §14): volumes that outlive releases, managed databases, their links to
-- services and their backups.

-- A service's volumes. A volume is named by its owner, its service's name and its own name, so
-- a kept one (DELETE /services/{id}?keep_volumes=true sets service_id NULL) is attached again
-- when the same owner deploys a service of that name. Its storage is named after the service
-- that first made it (`origin_service_id`): docker volume `dployr-<origin>-<name>`, host
-- directory `<data_dir>/volumes/<origin>/<name>`; so attaching it again renames nothing.
CREATE TABLE volumes (
    id                TEXT PRIMARY KEY,
    owner_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    service_name      TEXT NOT NULL,
    name              TEXT NOT NULL,
    service_id        TEXT REFERENCES services (id) ON DELETE SET NULL,
    origin_service_id TEXT NOT NULL,
    target            TEXT NOT NULL,          -- where its storage is (docker | systemd | process)
    path              TEXT NOT NULL,          -- where the latest release mounts it
    created_at        TEXT NOT NULL,
    UNIQUE (owner_id, service_name, name)
);
CREATE INDEX volumes_service ON volumes (service_id);

CREATE TABLE databases (
    id              TEXT PRIMARY KEY,
    owner_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id      TEXT NOT NULL REFERENCES projects (id),
    name            TEXT NOT NULL,
    engine          TEXT NOT NULL CHECK (engine IN ('postgres', 'redis', 'mariadb')),
    version         TEXT NOT NULL,
    image           TEXT NOT NULL,            -- the image it was made from
    -- restoring: a restore from one of its backups runs (dployr.databases.backups)
    status          TEXT NOT NULL
                    CHECK (status IN ('creating', 'running', 'stopped', 'failed', 'restoring')),
    error           TEXT,
    host_port       INTEGER NOT NULL,         -- published on 127.0.0.1 only
    username        TEXT NOT NULL,
    database        TEXT NOT NULL,
    password_enc    TEXT NOT NULL,            -- encrypted (dployr.crypto)
    volume          TEXT NOT NULL,            -- the docker volume with its data
    container_id    TEXT,
    backup_schedule TEXT NOT NULL,            -- a cron expression
    keep_backups    INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (owner_id, name)
);
CREATE INDEX databases_project ON databases (project_id);

-- A link sets a secret env var on the service (service_env holds the value); this row says
-- which database set it, so unlinking removes it and a deleted database's links are known.
CREATE TABLE database_links (
    database_id TEXT NOT NULL REFERENCES databases (id) ON DELETE CASCADE,
    service_id  TEXT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    env         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (database_id, service_id)
);
CREATE INDEX database_links_service ON database_links (service_id);

CREATE TABLE database_backups (
    id           TEXT PRIMARY KEY,
    database_id  TEXT NOT NULL REFERENCES databases (id) ON DELETE CASCADE,
    status       TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    trigger      TEXT NOT NULL CHECK (trigger IN ('api', 'schedule')),
    file         TEXT,                        -- its file name under the backup dir
    size_bytes   INTEGER,
    error        TEXT,
    created_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX database_backups_database ON database_backups (database_id, created_at);

-- A database deleted with ?keep_data=true leaves its volume; this row lets the same owner's next
-- database of that name (and engine) take it back, with the credentials its data knows.
CREATE TABLE kept_database_volumes (
    owner_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    engine       TEXT NOT NULL,
    volume       TEXT NOT NULL,
    username     TEXT NOT NULL,
    database     TEXT NOT NULL,
    password_enc TEXT NOT NULL,
    kept_at      TEXT NOT NULL,
    PRIMARY KEY (owner_id, name)
);
