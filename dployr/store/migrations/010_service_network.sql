-- Per-service network rates (SPEC §6): bytes per second received and sent by a service's
-- live instance since the previous sample; NULL where not known (systemd and process
-- targets, the first sample of an instance, a restart). Rows from before keep NULL.
ALTER TABLE service_metrics ADD COLUMN net_rx_bps REAL;
ALTER TABLE service_metrics ADD COLUMN net_tx_bps REAL;
