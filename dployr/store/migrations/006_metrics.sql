-- Host metrics (SPEC §6): one table, three resolutions. resolution 0 = raw samples (every
-- metrics.interval s, kept 24 h), 60 = 1-minute averages (7 days), 3600 = 1-hour averages
-- (90 days). ts is unix seconds (the bucket's start for averages).
CREATE TABLE host_metrics (
    resolution     INTEGER NOT NULL CHECK (resolution IN (0, 60, 3600)),
    ts             INTEGER NOT NULL,
    cpu_percent    REAL NOT NULL,
    load_1         REAL NOT NULL,
    load_5         REAL NOT NULL,
    load_15        REAL NOT NULL,
    memory_used    REAL NOT NULL,
    memory_percent REAL NOT NULL,
    swap_used      REAL NOT NULL,
    swap_percent   REAL NOT NULL,
    disk_used      REAL NOT NULL,
    disk_percent   REAL NOT NULL,
    net_rx_bps     REAL NOT NULL,
    net_tx_bps     REAL NOT NULL,
    uptime         REAL NOT NULL,
    PRIMARY KEY (resolution, ts)
) WITHOUT ROWID;
