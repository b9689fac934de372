-- Services, their deployments (releases), env, credentials and deployment logs (SPEC §4).

CREATE TABLE credentials (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type       TEXT NOT NULL CHECK (type IN ('deploy_key', 'token')),
    name       TEXT NOT NULL,
    secret_enc TEXT NOT NULL,                 -- encrypted (dployr.crypto); never returned
    created_at TEXT NOT NULL
);
CREATE INDEX credentials_owner ON credentials (owner_id, created_at);

CREATE TABLE services (
    id                    TEXT PRIMARY KEY,
    owner_id              TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id            TEXT NOT NULL REFERENCES projects (id),
    name                  TEXT NOT NULL,
    runtime               TEXT NOT NULL,
    target                TEXT NOT NULL,
    desired_state         TEXT NOT NULL DEFAULT 'running'
                          CHECK (desired_state IN ('running', 'stopped')),
    auto_deploy           TEXT NOT NULL DEFAULT 'webhook'
                          CHECK (auto_deploy IN ('off', 'webhook', 'poll')),
    hook_secret_enc       TEXT NOT NULL,
    current_deployment_id TEXT,
    next_number           INTEGER NOT NULL DEFAULT 1,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    UNIQUE (owner_id, name)
);
CREATE INDEX services_project ON services (project_id);

-- The service's variables: the one list (SPEC §13). Secret values only in value_enc.
CREATE TABLE service_env (
    service_id TEXT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT,                          -- NULL when secret
    value_enc  TEXT,                          -- set when secret
    secret     INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (service_id, key)
);

CREATE TABLE deployments (
    id            TEXT PRIMARY KEY,
    service_id    TEXT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    owner_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id    TEXT NOT NULL,
    number        INTEGER NOT NULL,
    status        TEXT NOT NULL,
    progress      INTEGER NOT NULL DEFAULT 0,
    spec          TEXT NOT NULL,              -- JSON: the requested config (source … domain)
    env_enc       TEXT NOT NULL,              -- encrypted JSON: the merged env it runs with
    env_public    TEXT NOT NULL,              -- JSON: the same with secret values masked
    commit_sha    TEXT,
    artifact      TEXT,                       -- the image (docker) it built or reused
    triggered_by  TEXT NOT NULL,
    rollback_of   TEXT,
    error         TEXT,
    stages        TEXT NOT NULL,              -- JSON list of {name, status, started_at, ...}
    host_port     INTEGER,
    instance_ref  TEXT,                       -- container id (docker)
    created_at    TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    UNIQUE (service_id, number)
);
CREATE INDEX deployments_service ON deployments (service_id, number);
CREATE INDEX deployments_owner_created ON deployments (owner_id, created_at);
CREATE INDEX deployments_status ON deployments (status);

CREATE TABLE deployment_logs (
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    timestamp     TEXT NOT NULL,
    line          TEXT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
) WITHOUT ROWID;
