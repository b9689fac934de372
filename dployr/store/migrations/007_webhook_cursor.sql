-- How far the delivery worker has read the event log: deliveries for every event up to `seq`
-- are written (in the same transaction that moves it), so no event is skipped or doubled.
CREATE TABLE webhook_cursor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO webhook_cursor (id, seq) SELECT 1, COALESCE(MAX(seq), 0) FROM events;
