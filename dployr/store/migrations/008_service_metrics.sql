-- Per-service metrics (SPEC §6): each running service's live instance, sampled every
-- metrics.interval s, with the host's resolutions and retention (0 = raw 24 h, 60 = 1-minute
-- averages 7 days, 3600 = 1-hour averages 90 days). cpu_percent is of one core; restarts is
-- the instance's count (its maximum in a bucket). Rows go with their service.
CREATE TABLE service_metrics (
    service_id    TEXT NOT NULL,
    resolution    INTEGER NOT NULL CHECK (resolution IN (0, 60, 3600)),
    ts            INTEGER NOT NULL,
    cpu_percent   REAL NOT NULL,
    memory_bytes  REAL NOT NULL,
    restarts      INTEGER NOT NULL,
    PRIMARY KEY (service_id, resolution, ts)
) WITHOUT ROWID;

CREATE INDEX service_metrics_by_time ON service_metrics (resolution, ts);
